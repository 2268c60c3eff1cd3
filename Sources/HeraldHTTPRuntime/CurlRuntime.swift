internal import CCurlShim
import Foundation
internal import HeraldCore
import Logging
import ServiceLifecycle
import Synchronization

/// Executes HTTP (and SMTP) transfers over libcurl's multi interface.
///
/// One dedicated thread owns the `CURLM` handle and every `CURL` easy handle;
/// callers only touch a `Mutex`-protected state machine and a wake fd, so no
/// blocking C call ever runs on Swift's cooperative thread pool.
///
/// Run it as a swift-service-lifecycle `Service`: ``execute(_:)`` calls made
/// before ``run()`` wait until it starts; when ``run()`` ends (graceful
/// shutdown or cancellation) every pending and in-flight transfer fails with
/// ``TransferError/Code/shutdown``.
public final class CurlRuntime: Service, Sendable {
    public struct Configuration: Sendable {
        /// Transfers added to the multi handle at once; the rest wait in a FIFO queue.
        public var maxConcurrentTransfers: Int = 256
        /// Connections libcurl opens to one host (`CURLMOPT_MAX_HOST_CONNECTIONS`).
        public var maxConnectionsPerHost: Int = 64
        public var userAgent: String = "Herald/0.1"
        /// Response bodies beyond this many bytes are cut off (``HTTPResponse/bodyTruncated``).
        public var maxResponseBodyBytes: Int = 1 << 20
        /// Response header bytes kept per response; further header lines are dropped.
        public var maxResponseHeaderBytes: Int = 64 << 10
        /// Idle connections kept for reuse (`CURLMOPT_MAXCONNECTS`); `nil` = `maxConcurrentTransfers`.
        public var maxCachedConnections: Int? = nil
        /// PEM file of trusted certificate authorities for transfers that name none
        /// (``HTTPRequest/caFile``, ``SMTPRequest/caFile``); nil: libcurl's built-in bundle.
        /// See ``defaultCAFile(environment:)``.
        public var defaultCAFile: String? = nil
        /// Longest single `curl_multi_poll` wait when idle (libcurl shortens it to
        /// its own timers, the wake fd interrupts it). Internal: tests raise it to
        /// prove that new work does not wait for the poll timeout.
        var loopPollTimeout: Duration = .seconds(1)

        public init() {}

        /// The CA bundle a deployment names the way curl and OpenSSL tools read it:
        /// `CURL_CA_BUNDLE`, else `SSL_CERT_FILE` (libcurl itself reads neither).
        public static func defaultCAFile(environment: [String: String]) -> String? {
            for name in ["CURL_CA_BUNDLE", "SSL_CERT_FILE"] {
                if let path = environment[name], !path.isEmpty { return path }
            }
            return nil
        }
    }

    let configuration: Configuration
    let logger: Logger
    let state: Mutex<TransferStateMachine<TransferJob>>
    private let loopExit = Mutex(LoopExit())
    /// Iterations of the loop thread so far (tests use it to prove the loop sleeps when idle).
    let loopIterations = Atomic<Int>(0)
    /// Created in `init`, closed in `deinit`: the loop thread holds a strong
    /// reference to `self`, so the descriptors outlive every user.
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    private struct LoopExit: ~Copyable {
        var finished = false
        var failure: TransferError? = nil
        var waiter: CheckedContinuation<Void, Never>? = nil
    }

    /// `curl_global_init`, once per process, on first use.
    private static let globalInitResult: Int32 = Int32(bitPattern: herald_curl_global_init().rawValue)

    public init(configuration: Configuration = .init(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.state = Mutex(TransferStateMachine(maxActive: max(1, configuration.maxConcurrentTransfers)))
        var readFD: Int32 = -1
        var writeFD: Int32 = -1
        if herald_wakefd_create(&readFD, &writeFD) != 0 {
            readFD = -1
            writeFD = -1
        }
        self.wakeReadFD = readFD
        self.wakeWriteFD = writeFD
    }

    deinit {
        herald_wakefd_close(self.wakeReadFD, self.wakeWriteFD)
    }

    // MARK: Service

    /// Starts the loop thread and returns once the runtime has shut down
    /// (graceful shutdown or task cancellation): pending and in-flight transfers
    /// have been failed with ``TransferError/Code/shutdown`` and the thread has exited.
    /// Can be called once per instance.
    public func run() async throws {
        guard self.state.withLock({ $0.start() }) == .startLoop else {
            throw TransferError(code: .invalidRequest, message: "CurlRuntime.run() was already called on this instance")
        }
        if Self.globalInitResult != 0 || self.wakeReadFD < 0 {
            let message =
                Self.globalInitResult != 0
                ? "curl_global_init failed with CURLcode \(Self.globalInitResult)"
                : "could not create the loop's wake descriptor"
            self.logger.error("HTTP runtime cannot start", metadata: ["error": "\(message)"])
            self.initiateShutdown()
            self.state.withLock { $0.loopStopped() }
            throw TransferError(code: .other, message: message, curlCode: Self.globalInitResult)
        }

        let loopConfiguration = CurlLoop.Settings(self.configuration)
        NamedThread.start("herald-curl") { [self] in
            let failure = CurlLoop.run(
                settings: loopConfiguration,
                runtime: self,
                wakeFD: self.wakeReadFD,
                logger: self.logger
            )
            let waiter = self.loopExit.withLock { exit in
                exit.finished = true
                exit.failure = failure
                return exit.waiter.take()
            }
            waiter?.resume()
        }
        self.logger.debug(
            "HTTP runtime started",
            metadata: [
                "maxConcurrentTransfers": "\(self.configuration.maxConcurrentTransfers)",
                "maxConnectionsPerHost": "\(self.configuration.maxConnectionsPerHost)",
            ]
        )

        await withTaskCancellationOrGracefulShutdownHandler {
            await self.waitForLoopExit()
        } onCancelOrGracefulShutdown: {
            self.initiateShutdown()
        }
        self.logger.debug("HTTP runtime stopped")
        if let failure = self.loopExit.withLock({ $0.failure }) {
            throw failure
        }
    }

    private func waitForLoopExit() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = self.loopExit.withLock { exit in
                if exit.finished { return true }
                exit.waiter = continuation
                return false
            }
            if finished { continuation.resume() }
        }
    }

    private func initiateShutdown() {
        let action = self.state.withLock { $0.shutdown() }
        switch action {
        case .wakeLoop(let pending):
            herald_wakefd_signal(self.wakeWriteFD)
            Self.fail(pending, with: .shutdown)
        case .stopped(let pending):
            Self.fail(pending, with: .shutdown)
        case .none:
            break
        }
    }

    static func fail(_ jobs: [TransferJob], with failure: TransferFailure) {
        for job in jobs {
            job.completion.complete(.failure(failure.error))
        }
    }

    // MARK: Transfers

    /// Executes one HTTP request. Any HTTP status is a response; a failure to
    /// obtain one throws ``TransferError``; cancelling the calling task removes
    /// the transfer and throws `CancellationError`.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        try RequestValidation.validate(request)
        let raw = try await self.perform(.http(request))
        return HTTPResponse(
            status: raw.responseCode,
            headers: HeaderParser.parse(raw.rawHeaders),
            body: raw.body,
            totalTime: raw.totalTime,
            bodyTruncated: raw.bodyTruncated
        )
    }

    /// Submits one message over SMTP (`smtp://` with optional STARTTLS, or `smtps://`).
    /// Throws ``TransferError`` (``TransferError/Code/rejected`` with the server's
    /// reply code when the server refuses sender, a recipient or the message).
    public func sendMail(_ mail: SMTPRequest) async throws -> SMTPResponse {
        try RequestValidation.validate(mail)
        let raw = try await self.perform(.smtp(mail))
        return SMTPResponse(statusCode: raw.responseCode, totalTime: raw.totalTime)
    }

    /// Transfers pending and active right now (for metrics and tests).
    public var inFlight: (pending: Int, active: Int) {
        self.state.withLock { ($0.pendingCount, $0.activeCount) }
    }

    private func perform(_ spec: TransferSpec) async throws -> RawTransferResult {
        try Task.checkCancellation()
        let id = self.state.withLock { $0.reserveID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RawTransferResult, any Error>) in
                let job = TransferJob(spec: spec, completion: TransferCompletion(continuation))
                let action = self.state.withLock { $0.submit(id, job: job) }
                switch action {
                case .wakeLoop:
                    herald_wakefd_signal(self.wakeWriteFD)
                case .none:
                    break
                case .fail(let job, let failure):
                    job.completion.complete(.failure(failure.error))
                }
            }
        } onCancel: {
            let action = self.state.withLock { $0.cancel(id) }
            switch action {
            case .failPending(let job):
                job.completion.complete(.failure(CancellationError()))
            case .wakeLoop:
                herald_wakefd_signal(self.wakeWriteFD)
            case .none:
                break
            }
        }
    }
}

extension TransferFailure {
    var error: any Error {
        switch self {
        case .cancelled:
            return CancellationError()
        case .shutdown:
            return TransferError(code: .shutdown, message: "the HTTP runtime is shut down")
        }
    }
}

// MARK: - Jobs

/// What a transfer does; configured onto an easy handle by the loop thread.
enum TransferSpec: Sendable {
    case http(HTTPRequest)
    case smtp(SMTPRequest)
}

/// Protocol-neutral outcome collected from an easy handle.
struct RawTransferResult: Sendable {
    var responseCode: Int
    var rawHeaders: [UInt8]
    var body: [UInt8]
    var bodyTruncated: Bool
    var totalTime: Duration
}

struct TransferJob: Sendable {
    var spec: TransferSpec
    var completion: TransferCompletion
}

/// A continuation that is resumed at most once, whoever gets there first
/// (the loop thread, a cancellation handler or shutdown). If it is dropped
/// without being resumed, it is resumed with an error rather than leaked.
final class TransferCompletion: Sendable {
    private let continuation: Mutex<CheckedContinuation<RawTransferResult, any Error>?>

    init(_ continuation: CheckedContinuation<RawTransferResult, any Error>) {
        self.continuation = Mutex(continuation)
    }

    /// Returns `false` if it had been completed already.
    @discardableResult
    func complete(_ result: Result<RawTransferResult, any Error>) -> Bool {
        guard let continuation = self.continuation.withLock({ $0.take() }) else { return false }
        continuation.resume(with: result)
        return true
    }

    deinit {
        if let continuation = self.continuation.withLock({ $0.take() }) {
            continuation.resume(throwing: TransferError(code: .other, message: "transfer was dropped without a result"))
        }
    }
}
