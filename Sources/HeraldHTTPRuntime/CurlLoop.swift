internal import CCurlShim
import Foundation
import Logging
import Synchronization

/// The code that runs on the runtime's dedicated thread. Every `CURLM`/`CURL`
/// pointer lives in a `CurlLoop` instance that is created, used and destroyed
/// on that thread only (it is deliberately not `Sendable`).
final class CurlLoop {
    /// The parts of ``CurlRuntime/Configuration`` the loop needs.
    struct Settings: Sendable {
        var maxConcurrentTransfers: Int
        var maxConnectionsPerHost: Int
        var maxCachedConnections: Int
        var userAgent: String
        var maxResponseBodyBytes: Int
        var maxResponseHeaderBytes: Int
        /// Upper bound for one `curl_multi_poll` wait; libcurl shortens it to its own timers.
        var pollTimeoutMilliseconds: Int32
        var defaultCAFile: String?

        init(_ configuration: CurlRuntime.Configuration) {
            self.maxConcurrentTransfers = max(1, configuration.maxConcurrentTransfers)
            self.maxConnectionsPerHost = max(1, configuration.maxConnectionsPerHost)
            self.maxCachedConnections = max(1, configuration.maxCachedConnections ?? configuration.maxConcurrentTransfers)
            self.userAgent = configuration.userAgent
            self.maxResponseBodyBytes = max(0, configuration.maxResponseBodyBytes)
            self.maxResponseHeaderBytes = max(1024, configuration.maxResponseHeaderBytes)
            self.pollTimeoutMilliseconds = Int32(clamping: configuration.loopPollTimeout.clampedMilliseconds)
            self.defaultCAFile = configuration.defaultCAFile.flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    private let settings: Settings
    /// Holds the shared state machine (`Mutex` is not copyable, so it stays in the runtime).
    private let runtime: CurlRuntime
    private let logger: Logger
    private let multi: UnsafeMutableRawPointer
    /// Configured, reusable easy handles not in use.
    private var idle: [EasySlot] = []
    private var activeByHandle: [UnsafeMutableRawPointer: EasySlot] = [:]
    private var activeByID: [TransferID: EasySlot] = [:]
    /// One connection cache per SMTP TLS profile (libcurl 7.88 reuses a cached SMTP connection to
    /// the same host and port whatever `CURLOPT_USE_SSL` and CA the new transfer asks for, so
    /// connections must never meet across profiles). HTTP keeps the multi handle's cache: there
    /// TLS is part of the scheme, and libcurl compares the TLS settings of `https://` connections.
    private var smtpConnectionCaches: [SMTPConnectionProfile: UnsafeMutableRawPointer] = [:]

    private init(
        settings: Settings,
        runtime: CurlRuntime,
        logger: Logger,
        multi: UnsafeMutableRawPointer
    ) {
        self.settings = settings
        self.runtime = runtime
        self.logger = logger
        self.multi = multi
    }

    /// Runs the loop on the calling thread until shutdown. Returns an error
    /// only when the loop could not start at all.
    static func run(
        settings: Settings,
        runtime: CurlRuntime,
        wakeFD: Int32,
        logger: Logger
    ) -> TransferError? {
        guard let multi = curl_multi_init() else {
            let error = TransferError(code: .other, message: "curl_multi_init failed")
            logger.error("HTTP runtime cannot start", metadata: ["error": "\(error)"])
            if case .wakeLoop(let pending) = runtime.state.withLock({ $0.shutdown() }) {
                CurlRuntime.fail(pending, with: .shutdown)
            }
            runtime.state.withLock { $0.loopStopped() }
            return error
        }
        let loop = CurlLoop(settings: settings, runtime: runtime, logger: logger, multi: multi)
        loop.configureMulti()
        loop.loop(wakeFD: wakeFD)
        loop.tearDown()
        runtime.state.withLock { $0.loopStopped() }
        return nil
    }

    private func configureMulti() {
        let options: [(CURLMoption, Int, String)] = [
            (CURLMOPT_MAX_HOST_CONNECTIONS, self.settings.maxConnectionsPerHost, "MAX_HOST_CONNECTIONS"),
            (CURLMOPT_MAX_TOTAL_CONNECTIONS, self.settings.maxConcurrentTransfers, "MAX_TOTAL_CONNECTIONS"),
            (CURLMOPT_MAXCONNECTS, self.settings.maxCachedConnections, "MAXCONNECTS"),
        ]
        for (option, value, name) in options {
            let rc = herald_multi_setopt_long(self.multi, option, value)
            if rc != CURLM_OK {
                self.logger.warning(
                    "curl_multi_setopt failed",
                    metadata: ["option": "\(name)", "error": "\(String(cString: curl_multi_strerror(rc)))"]
                )
            }
        }
    }

    private func loop(wakeFD: Int32) {
        while true {
            self.runtime.loopIterations.add(1, ordering: .relaxed)
            let work = self.runtime.state.withLock { $0.nextLoopWork() }
            for id in work.cancel {
                if let slot = self.activeByID[id] {
                    self.finish(slot, with: .failure(CancellationError()))
                }
            }
            if work.shutdown {
                self.abortAll()
                return
            }
            for (id, job) in work.start {
                self.start(id, job)
            }

            var running: Int32 = 0
            let rc = curl_multi_perform(self.multi, &running)
            if rc != CURLM_OK {
                self.logger.error(
                    "curl_multi_perform failed",
                    metadata: ["error": "\(String(cString: curl_multi_strerror(rc)))"]
                )
            }

            var completedAny = false
            var easy: UnsafeMutableRawPointer? = nil
            var result = CURLE_OK
            while herald_multi_next_done(self.multi, &easy, &result) == 1 {
                guard let handle = easy, let slot = self.activeByHandle[handle] else { continue }
                completedAny = true
                self.finish(slot, with: self.collect(slot, result))
            }
            // Freed capacity: take queued work before sleeping.
            if completedAny { continue }

            var wakeReady: Int32 = 0
            let pollRC = herald_multi_poll_with_fd(self.multi, wakeFD, self.settings.pollTimeoutMilliseconds, &wakeReady)
            if pollRC != CURLM_OK {
                self.logger.error(
                    "curl_multi_poll failed",
                    metadata: ["error": "\(String(cString: curl_multi_strerror(pollRC)))"]
                )
                // Do not spin if polling keeps failing (this is the loop thread, not the cooperative pool).
                Thread.sleep(forTimeInterval: 0.01)
            }
            if wakeReady != 0 {
                herald_wakefd_drain(wakeFD)
            }
        }
    }

    // MARK: Transfers

    private func start(_ id: TransferID, _ job: TransferJob) {
        let slot: EasySlot
        if let reused = self.idle.popLast() {
            slot = reused
            curl_easy_reset(slot.easy)
        } else if let fresh = EasySlot() {
            slot = fresh
        } else {
            self.runtime.state.withLock { $0.transferFinished(id) }
            job.completion.complete(
                .failure(TransferError(code: .other, message: "could not allocate a curl easy handle"))
            )
            return
        }
        slot.id = id
        slot.job = job
        do {
            try self.configure(slot, for: job.spec)
        } catch {
            slot.id = nil
            slot.job = nil
            self.recycle(slot)
            self.runtime.state.withLock { $0.transferFinished(id) }
            job.completion.complete(.failure(error))
            return
        }
        let rc = curl_multi_add_handle(self.multi, slot.easy)
        guard rc == CURLM_OK else {
            slot.id = nil
            slot.job = nil
            self.recycle(slot)
            self.runtime.state.withLock { $0.transferFinished(id) }
            job.completion.complete(
                .failure(
                    TransferError(
                        code: .other,
                        message: "curl_multi_add_handle failed: \(String(cString: curl_multi_strerror(rc)))"
                    )
                )
            )
            return
        }
        self.activeByHandle[slot.easy] = slot
        self.activeByID[id] = slot
        self.logger.trace("transfer started", metadata: ["transfer": "\(id)"])
    }

    /// Removes an active transfer from the multi handle, frees its capacity and
    /// resumes its caller. The order matters: capacity is released before the
    /// caller resumes, so its next submission can start at once.
    private func finish(_ slot: EasySlot, with result: Result<RawTransferResult, any Error>) {
        curl_multi_remove_handle(self.multi, slot.easy)
        self.activeByHandle.removeValue(forKey: slot.easy)
        guard let id = slot.id, let job = slot.job else { return }
        self.activeByID.removeValue(forKey: id)
        slot.id = nil
        slot.job = nil
        self.runtime.state.withLock { $0.transferFinished(id) }
        job.completion.complete(result)
        self.logger.trace("transfer finished", metadata: ["transfer": "\(id)"])
        self.recycle(slot)
    }

    private func recycle(_ slot: EasySlot) {
        slot.releaseLists()
        herald_transfer_trim(slot.transfer)
        if self.idle.count < self.settings.maxConcurrentTransfers {
            self.idle.append(slot)
        }
        // Otherwise the slot is dropped and its deinit cleans the handle up.
    }

    private func abortAll() {
        for slot in Array(self.activeByHandle.values) {
            let sent = TransferInfo(slot).requestMayHaveBeenSent
            self.finish(
                slot,
                with: .failure(
                    TransferError(
                        code: .shutdown,
                        message: "the HTTP runtime shut down during the transfer",
                        requestMayHaveBeenSent: sent
                    )
                )
            )
        }
    }

    private func tearDown() {
        self.abortAll()
        self.idle.removeAll()  // EasySlot.deinit → curl_easy_cleanup (detaches its share)
        curl_multi_cleanup(self.multi)
        // Last: no easy handle uses them any more (curl_share_cleanup refuses a share in use).
        for share in self.smtpConnectionCaches.values {
            curl_share_cleanup(share)
        }
        self.smtpConnectionCaches.removeAll()
    }

    /// The connection cache for `profile`, made on first use.
    private func connectionCache(for profile: SMTPConnectionProfile) throws(TransferError) -> UnsafeMutableRawPointer {
        if let share = self.smtpConnectionCaches[profile] { return share }
        guard let share = herald_share_create_connection_cache() else {
            throw TransferError(code: .other, message: "could not create a curl connection cache (curl_share_init)")
        }
        self.smtpConnectionCaches[profile] = share
        self.logger.debug(
            "SMTP connection cache created",
            metadata: ["starttls": "\(profile.startTLS)", "caFile": "\(profile.caFile ?? "-")"])
        return share
    }

    // MARK: Configuration

    private func configure(_ slot: EasySlot, for spec: TransferSpec) throws(TransferError) {
        switch spec {
        case .http(let request):
            try self.configureHTTP(slot, request)
        case .smtp(let mail):
            try self.configureSMTP(slot, mail)
        }
    }

    private func configureCommon(
        _ slot: EasySlot,
        url: String,
        protocols: String,
        timeout: Duration,
        connectTimeout: Duration,
        restrict: Bool,
        caFile: String?,
        share: UnsafeMutableRawPointer?,
        maxResponseBodyBytes: Int? = nil
    ) throws(TransferError) {
        herald_transfer_reset(
            slot.transfer,
            maxResponseBodyBytes ?? self.settings.maxResponseBodyBytes,
            self.settings.maxResponseHeaderBytes,
            restrict ? 1 : 0
        )
        slot.errorBuffer[0] = 0
        try slot.set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(slot.errorBuffer))
        try slot.set(CURLOPT_NOSIGNAL, 1)
        try slot.set(CURLOPT_URL, url)
        try slot.set(CURLOPT_PROTOCOLS_STR, protocols)
        // Never take a proxy from the environment: the SSRF guard must see the real peer.
        try slot.set(CURLOPT_PROXY, "")
        try slot.set(CURLOPT_FOLLOWLOCATION, 0)
        try slot.set(CURLOPT_TIMEOUT_MS, timeout.clampedMilliseconds)
        try slot.set(CURLOPT_CONNECTTIMEOUT_MS, connectTimeout.clampedMilliseconds)
        try slot.set(CURLOPT_TCP_KEEPALIVE, 1)
        // curl_easy_reset keeps the share a recycled handle had: always set it.
        try slot.set(CURLOPT_SHARE, pointer: share)
        if let caFile = caFile ?? self.settings.defaultCAFile {
            try slot.set(CURLOPT_CAINFO, caFile)
        }
    }

    private func configureHTTP(_ slot: EasySlot, _ request: HTTPRequest) throws(TransferError) {
        try self.configureCommon(
            slot,
            url: request.url,
            protocols: "http,https",
            timeout: request.timeout,
            connectTimeout: request.connectTimeout,
            restrict: request.restrictToPublicAddresses,
            caFile: request.caFile,
            share: nil,
            maxResponseBodyBytes: request.maxResponseBodyBytes
        )
        try slot.set(CURLOPT_USERAGENT, self.settings.userAgent)

        let method = request.method
        var sendsBody = true
        if method == "GET" && request.body.isEmpty {
            try slot.set(CURLOPT_HTTPGET, 1)
            sendsBody = false
        } else if method == "HEAD" && request.body.isEmpty {
            try slot.set(CURLOPT_NOBODY, 1)
            sendsBody = false
        } else {
            try slot.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(request.body.count))
            try slot.setCopiedPostFields(request.body)
            if method != "POST" {
                try slot.set(CURLOPT_CUSTOMREQUEST, method)
            }
        }

        var lines: [String] = []
        lines.reserveCapacity(request.headers.count + 2)
        var hasExpect = false
        var hasContentType = false
        for field in request.headers {
            if asciiCaseInsensitiveEquals(field.name, "Expect") { hasExpect = true }
            if asciiCaseInsensitiveEquals(field.name, "Content-Type") { hasContentType = true }
            // "Name;" is libcurl's syntax for a header with an empty value.
            lines.append(field.value.isEmpty ? "\(field.name);" : "\(field.name): \(field.value)")
        }
        if sendsBody {
            // No "Expect: 100-continue" round trip, and no invented form content type.
            if !hasExpect { lines.append("Expect:") }
            if !hasContentType { lines.append("Content-Type:") }
        }
        if !lines.isEmpty {
            let list = try slot.makeList(lines)
            try slot.set(CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(list))
        }
        try slot.install(readCallback: false)
    }

    private func configureSMTP(_ slot: EasySlot, _ mail: SMTPRequest) throws(TransferError) {
        try self.configureCommon(
            slot,
            url: mail.url,
            protocols: "smtp,smtps",
            timeout: mail.timeout,
            connectTimeout: mail.connectTimeout,
            restrict: mail.restrictToPublicAddresses,
            caFile: mail.caFile,
            share: try self.connectionCache(for: mail.connectionProfile)
        )
        let useSSL: curl_usessl
        switch mail.startTLS {
        case .none: useSSL = CURLUSESSL_NONE
        case .opportunistic: useSSL = CURLUSESSL_TRY
        case .required: useSSL = CURLUSESSL_ALL
        }
        try slot.set(CURLOPT_USE_SSL, Int(useSSL.rawValue))
        if let username = mail.username { try slot.set(CURLOPT_USERNAME, username) }
        if let password = mail.password { try slot.set(CURLOPT_PASSWORD, password) }
        try slot.set(CURLOPT_MAIL_FROM, "<\(mail.from)>")
        let recipients = try slot.makeList(mail.recipients.map { "<\($0)>" })
        try slot.set(CURLOPT_MAIL_RCPT, pointer: UnsafeMutableRawPointer(recipients))
        try slot.set(CURLOPT_UPLOAD, 1)
        herald_transfer_collect_server_replies(slot.transfer)
        if mail.requiresSMTPUTF8 {
            // A fresh connection, so the EHLO answer the check reads belongs to this transfer.
            herald_transfer_require_smtputf8(slot.transfer)
            try slot.set(CURLOPT_FRESH_CONNECT, 1)
        }
        let copied = mail.message.withUnsafeBytes { bytes in
            herald_transfer_set_upload(slot.transfer, bytes.baseAddress, bytes.count)
        }
        guard copied == 0 else {
            throw TransferError(code: .other, message: "out of memory copying the message")
        }
        try slot.install(readCallback: true)
    }

    // MARK: Results

    private func collect(_ slot: EasySlot, _ code: CURLcode) -> Result<RawTransferResult, any Error> {
        let info = TransferInfo(slot)
        let truncated = herald_transfer_body_truncated(slot.transfer) != 0
        if code == CURLE_OK || (code == CURLE_WRITE_ERROR && truncated) {
            var headerCount = 0
            var bodyCount = 0
            let headerBytes = herald_transfer_headers(slot.transfer, &headerCount)
            let bodyBytes = herald_transfer_body(slot.transfer, &bodyCount)
            return .success(
                RawTransferResult(
                    responseCode: info.responseCode,
                    rawHeaders: Array(UnsafeBufferPointer(start: headerBytes, count: headerCount)),
                    body: Array(UnsafeBufferPointer(start: bodyBytes, count: bodyCount)),
                    bodyTruncated: truncated,
                    totalTime: info.totalTime
                )
            )
        }
        var smtp: SMTPReplies?
        if case .smtp = slot.job?.spec {
            var headerCount = 0
            let headerBytes = herald_transfer_headers(slot.transfer, &headerCount)
            smtp = SMTPReplies(Array(UnsafeBufferPointer(start: headerBytes, count: headerCount)))
        }
        return .failure(
            ErrorMapping.error(
                for: code,
                detail: String(cString: slot.errorBuffer),
                blockedAddress: herald_transfer_blocked(slot.transfer) != 0
                    ? String(cString: herald_transfer_blocked_address(slot.transfer)) : nil,
                smtputf8Missing: herald_transfer_smtputf8_missing(slot.transfer) != 0,
                info: info,
                smtp: smtp
            )
        )
    }
}

/// Timing and progress facts read from a finished (or aborted) easy handle.
struct TransferInfo {
    var responseCode: Int = 0
    var totalTime: Duration = .zero
    var requestMayHaveBeenSent: Bool = false

    init(responseCode: Int, totalTime: Duration, requestMayHaveBeenSent: Bool) {
        self.responseCode = responseCode
        self.totalTime = totalTime
        self.requestMayHaveBeenSent = requestMayHaveBeenSent
    }

    fileprivate init(_ slot: EasySlot) {
        var code = 0
        if herald_easy_getinfo_long(slot.easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK {
            self.responseCode = code
        }
        var micros: curl_off_t = 0
        if herald_easy_getinfo_off_t(slot.easy, CURLINFO_TOTAL_TIME_T, &micros) == CURLE_OK {
            self.totalTime = .microseconds(micros)
        }
        // Reaching "pre-transfer" means connection set-up (TCP, TLS) is done and
        // the request is about to be or has been written: from then on the
        // server may have seen it. request size counts bytes actually sent.
        var pretransfer: curl_off_t = 0
        _ = herald_easy_getinfo_off_t(slot.easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer)
        var requestSize = 0
        _ = herald_easy_getinfo_long(slot.easy, CURLINFO_REQUEST_SIZE, &requestSize)
        self.requestMayHaveBeenSent = pretransfer > 0 || requestSize > 0
    }
}

/// A reusable easy handle plus its C-side transfer context. Loop thread only.
final class EasySlot {
    let easy: UnsafeMutableRawPointer
    let transfer: OpaquePointer
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// `curl_slist`s referenced by options of the current transfer.
    private var lists: [UnsafeMutablePointer<curl_slist>] = []
    var id: TransferID?
    var job: TransferJob?

    init?() {
        guard let easy = curl_easy_init() else { return nil }
        guard let transfer = herald_transfer_create() else {
            curl_easy_cleanup(easy)
            return nil
        }
        self.easy = easy
        self.transfer = transfer
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(self.easy)
        self.releaseLists()
        herald_transfer_destroy(self.transfer)
        self.errorBuffer.deallocate()
    }

    func releaseLists() {
        for list in self.lists { curl_slist_free_all(list) }
        self.lists.removeAll()
    }

    func makeList(_ items: [String]) throws(TransferError) -> UnsafeMutablePointer<curl_slist> {
        var head: UnsafeMutablePointer<curl_slist>? = nil
        for item in items {
            guard let next = curl_slist_append(head, item) else {
                if let head { curl_slist_free_all(head) }
                throw TransferError(code: .other, message: "out of memory building a curl_slist")
            }
            head = next
        }
        guard let head else {
            throw TransferError(code: .invalidRequest, message: "empty list")
        }
        self.lists.append(head)
        return head
    }

    func set(_ option: CURLoption, _ value: Int) throws(TransferError) {
        try Self.check(herald_easy_setopt_long(self.easy, option, value), option)
    }

    func set(_ option: CURLoption, _ value: String) throws(TransferError) {
        let rc = value.withCString { herald_easy_setopt_string(self.easy, option, $0) }
        try Self.check(rc, option)
    }

    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) throws(TransferError) {
        try Self.check(herald_easy_setopt_pointer(self.easy, option, pointer), option)
    }

    func set(_ option: CURLoption, offset: Int64) throws(TransferError) {
        try Self.check(herald_easy_setopt_off_t(self.easy, option, curl_off_t(offset)), option)
    }

    /// CURLOPT_COPYPOSTFIELDS copies the bytes, so the array need not outlive the call.
    /// CURLOPT_POSTFIELDSIZE_LARGE must be set first.
    func setCopiedPostFields(_ body: [UInt8]) throws(TransferError) {
        let rc = body.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress {
                return herald_easy_setopt_pointer(self.easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
            }
            return herald_easy_setopt_string(self.easy, CURLOPT_COPYPOSTFIELDS, "")
        }
        try Self.check(rc, CURLOPT_COPYPOSTFIELDS)
    }

    func install(readCallback: Bool) throws(TransferError) {
        try Self.check(herald_transfer_install(self.transfer, self.easy, readCallback ? 1 : 0), nil)
    }

    private static func check(_ rc: CURLcode, _ option: CURLoption?) throws(TransferError) {
        guard rc != CURLE_OK else { return }
        let what = option.map { "option \($0.rawValue)" } ?? "callbacks"
        throw TransferError(
            code: rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_BAD_FUNCTION_ARGUMENT ? .invalidRequest : .other,
            message: "curl_easy_setopt(\(what)) failed: \(String(cString: curl_easy_strerror(rc)))",
            curlCode: Int32(bitPattern: rc.rawValue)
        )
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 (libcurl reads 0 as "no timeout").
    var clampedMilliseconds: Int {
        let (seconds, attoseconds) = self.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 1 }
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return Int.max }
        let total = ms.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return total.overflow ? Int.max : max(1, Int(total.partialValue))
    }
}
