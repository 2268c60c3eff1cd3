import Crypto
import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldTemplating
import Logging

/// One provider of the configuration in force (compiled at load); `attempt` renders, signs, sends, classifies.
///
/// Secret values are resolved on every attempt (a rotated secret applies to the next attempt) and
/// never logged; neither are URLs, headers or bodies, which can carry them.
public final class ProviderClient: Sendable {
    public let spec: ProviderSpec
    let runtime: CurlRuntime
    let secrets: SecretResolver
    let restrictToPublicAddresses: Bool
    let timeout: Duration
    let logger: Logger
    let accessTokens = AccessTokenCache()
    let apnsTokens = APNsTokenCache()
    let vapidTokens = VAPIDTokenCache()
    /// Where providers send delivery receipts (`{{receipts.url}}`); nil: not configured, no receipts asked for.
    let receiptLinks: ReceiptLinks?

    public init(
        spec: ProviderSpec, runtime: CurlRuntime, secrets: SecretResolver, restrictToPublicAddresses: Bool, timeout: Duration,
        logger: Logger, receiptLinks: ReceiptLinks? = nil
    ) {
        self.spec = spec
        self.receiptLinks = receiptLinks
        self.runtime = runtime
        self.secrets = secrets
        self.restrictToPublicAddresses = restrictToPublicAddresses
        self.timeout = timeout
        var logger = logger
        logger[metadataKey: "provider"] = "\(spec.name)"
        self.logger = logger
    }

    public var name: String { spec.name }

    /// OAuth token requests made so far (google_service_account); for tests and diagnostics.
    public var tokenRequestCount: Int {
        get async { await accessTokens.fetches }
    }

    // MARK: Attempt

    public func attempt(_ job: DeliveryJob, recipientField: String) async -> ProviderResult {
        let now = Date()
        let result: ProviderResult
        switch spec.transport {
        case .http(let http):
            result = await attemptHTTP(http, job: job, now: now)
        case .smtp(let smtp):
            result = await attemptSMTP(smtp, job: job, recipientField: recipientField, now: now)
        case .webPush(let push):
            result = await attemptWebPush(push, job: job, recipientField: recipientField, now: now)
        }
        logger.debug(
            "provider attempt finished",
            metadata: [
                "delivery_id": "\(job.deliveryID.uuidString.lowercased())", "attempt": "\(job.attempt)",
                "outcome": "\(result.outcome.rawValue)", "status": "\(result.httpStatus.map(String.init) ?? "-")",
            ])
        return result
    }

    private func attemptHTTP(_ http: HTTPProviderSpec, job: DeliveryJob, now: Date) async -> ProviderResult {
        let request: HTTPRequest
        // One budget for the whole attempt: a media upload's fetch and upload count against the timeout.
        let deadline = ContinuousClock.now + timeout
        do {
            // The context (secrets resolved) once per attempt, for the upload and the send.
            var values = try context(for: job, now: now)
            if let upload = http.upload {
                values.merge(try await uploadMedia(upload, http: http, values: values, job: job, now: now, deadline: deadline)) { _, new in new }
            }
            request = try await buildHTTPRequest(http, job: job, now: now, values: values, deadline: deadline)
        } catch {
            return ResponseClassifier.classify(error)
        }
        let response: HTTPResponse
        do {
            response = try await runtime.execute(request)
        } catch {
            return ResponseClassifier.classify(error)
        }
        if response.status == 401, case .googleServiceAccount? = http.auth {
            // A revoked or expired token: fetch a new one next time instead of waiting for its expiry.
            await accessTokens.invalidate()
        }
        return ResponseClassifier.classify(response, rules: http.response, now: Date())
    }

    // MARK: Building

    /// The request it would send, for `herald render`-style previews and tests (secrets resolved).
    /// Throws ``ProviderFailure`` (a missing secret, an invalid credential, a failed token exchange).
    public func buildRequest(for job: DeliveryJob, now: Date) async throws -> HTTPRequest {
        guard case .http(let http) = spec.transport else {
            throw ProviderFailure.permanent("provider \(name) is not an http provider")
        }
        return try await buildHTTPRequest(http, job: job, now: now)
    }

    /// The template context of an attempt, with the secrets the templates use.
    func context(for job: DeliveryJob, now: Date) throws(ProviderFailure) -> [String: JSONValue] {
        var resolved: [String: JSONValue] = [:]
        for name in spec.secretNames {
            guard let value = secrets.value(name) else { throw .permanent("secret \(name) is not set") }
            resolved[name] = .string(value)
        }
        var context = job.templateContext
        context["timestamp"] = .integer(Int64(now.timeIntervalSince1970.rounded(.down)))
        context["secrets"] = .object(resolved)
        if let sms = spec.sms {
            let segmentation = SMSSegmentation(job.message.text ?? "")
            // Refused here rather than cut by the provider (Kannel answers "Accepted" and sends the first parts).
            if let problem = sms.problem(with: segmentation) { throw .permanent(problem) }
            context["sms"] = Self.smsContext(segmentation, settings: sms)
        }
        // Absent without a configured public URL, so `{{#receipts}}…{{/receipts}}` asks for none.
        if let receipts = spec.receipts, let receiptLinks {
            context["receipts"] = [
                "url": .string(receiptLinks.url(
                    channel: job.channel, provider: spec.name, deliveryID: job.deliveryID, parameters: receipts.urlParameters)),
            ]
        }
        return context
    }

    /// `sms.encoding` (gsm7, ucs2), `sms.coding` (the provider's name for it), `sms.parts`, `sms.units`, `sms.max_parts`.
    static func smsContext(_ segmentation: SMSSegmentation, settings: SMSProviderSettings) -> JSONValue {
        [
            "encoding": .string(segmentation.encoding.rawValue),
            "coding": .string(settings.coding[segmentation.encoding] ?? segmentation.encoding.rawValue),
            "parts": .integer(Int64(segmentation.partCount)),
            "units": .integer(Int64(segmentation.units)),
            "max_parts": .integer(Int64(settings.maxParts)),
        ]
    }

    func buildHTTPRequest(
        _ http: HTTPProviderSpec, job: DeliveryJob, now: Date, values given: [String: JSONValue]? = nil,
        deadline: ContinuousClock.Instant? = nil
    ) async throws -> HTTPRequest {
        let values = try given ?? context(for: job, now: now)
        let context = RenderContext(values)
        let timeout = try remaining(until: deadline)

        let url = try renderURL(http.url, context: context)
        var headers = http.headers.map { HTTPHeaderField($0.name, Escaping.headerSafe($0.value.render(context))) }
        func hasHeader(_ name: String) -> Bool { headers.contains { $0.name.caseInsensitiveCompare(name) == .orderedSame } }

        let (body, contentType) = http.body.map { Self.render($0, context: context, values: values) } ?? ([], nil)
        if let contentType, !hasHeader("Content-Type") {
            headers.append(HTTPHeaderField("Content-Type", Escaping.headerSafe(contentType)))
        }

        if let auth = http.auth {
            let signed = try await authHeaders(auth, context: context, values: values, body: body, job: job, now: now)
            // What the auth sets replaces a configured header of the same name (one Authorization, not two).
            headers.removeAll { header in signed.contains { $0.name.caseInsensitiveCompare(header.name) == .orderedSame } }
            headers += signed
        }
        // The request's trace goes on to the provider (W3C Trace Context), as a span of this attempt.
        if let trace = job.traceparent.flatMap(TraceContext.init(traceparent:)), !hasHeader("traceparent") {
            headers.append(HTTPHeaderField("traceparent", trace.child().traceparent))
        }
        return HTTPRequest(
            method: http.method, url: url, headers: headers, body: body, timeout: timeout,
            connectTimeout: min(timeout, .seconds(10)), restrictToPublicAddresses: restrictToPublicAddresses,
            caFile: http.caFile)
    }

    /// A body's bytes and content type, each value escaped for where it lands.
    static func render(_ body: HTTPProviderSpec.Body, context: RenderContext, values: [String: JSONValue]) -> (bytes: [UInt8], contentType: String?) {
        switch body {
        case .json(let value):
            var text = ""
            writeJSON(value, context: context, values: .object(values), into: &text)
            return (Array(text.utf8), "application/json")
        case .form(let fields):
            // A field that renders empty is left out (an optional value, such as a status callback
            // URL when receipts are not configured): providers treat an empty value as a wrong one.
            let rendered = fields.map { ($0.name, $0.value.render(context)) }.filter { !$0.1.isEmpty }
            return (Array(ProviderEncoding.formBody(rendered).utf8), "application/x-www-form-urlencoded")
        case .text(let template, let type):
            return (Array(template.render(context).utf8), type)
        }
    }

    func renderURL(_ template: CompiledTemplate, context: RenderContext) throws(ProviderFailure) -> String {
        let rendered = template.render(context)
        if template.source.isSingleValue {
            let url = rendered.trimmedOfWhitespaceAndNewlines
            guard !url.isEmpty else { throw .permanent("url: the value \(template.source.source) is empty") }
            return url
        }
        // Values are percent-encoded, so they can't add a '/', '?' or '#'; but a value of exactly "." or ".."
        // between two literal slashes would still be a dot segment, which moves up the path: refuse it.
        if Self.hasDotSegment(rendered), !Self.hasDotSegment(template.source.source) {
            throw .permanent("url: a value made a '.' or '..' path segment")
        }
        return rendered
    }

    static func hasDotSegment(_ url: String) -> Bool {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        guard let slash = rest.firstIndex(of: "/") else { return false }
        let path = rest[slash...].prefix { $0 != "?" && $0 != "#" }
        return path.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == "." || $0 == ".." }
    }

    /// What is left of the attempt's budget; an attempt that used it all up is a transient failure.
    func remaining(until deadline: ContinuousClock.Instant?) throws(ProviderFailure) -> Duration {
        guard let deadline else { return timeout }
        let left = deadline - .now
        guard left > .milliseconds(50) else { throw ProviderFailure(.transientFailure, "the attempt's timeout was used up before the send") }
        return left
    }

    // MARK: Media upload

    /// The `upload` values for the send (`upload.result`, `content_type`, `size`, `filename`), or none
    /// when the value that asks for an upload is absent. A fetch or an upload that fails ends the
    /// attempt: transient when another try may work (5xx, 429, a timeout), permanent when not.
    func uploadMedia(
        _ upload: HTTPProviderSpec.MediaUpload, http: HTTPProviderSpec, values: [String: JSONValue], job: DeliveryJob, now: Date,
        deadline: ContinuousClock.Instant
    ) async throws -> [String: JSONValue] {
        var values = values
        guard Self.isPresent(JSONValue.object(values).value(atPath: upload.when)) else { return [:] }
        let source = upload.fetch.render(RenderContext(values)).trimmingCharacters(in: .whitespacesAndNewlines)
        guard source.lowercased().hasPrefix("https://") || source.lowercased().hasPrefix("http://") else {
            throw ProviderFailure.permanent("upload: the media URL is not an http(s) URL")
        }
        let fetched = try await fetchMedia(source, what: "the media", limit: "max_bytes", maxBytes: upload.maxBytes, deadline: deadline)
        let contentType = Escaping.headerSafe(fetched.header("Content-Type") ?? "application/octet-stream")
        var described: [String: JSONValue] = [
            "content_type": .string(contentType), "size": .integer(Int64(fetched.body.count)),
            "filename": .string(Self.filename(fromURL: source)),
        ]
        values["upload"] = .object(described)
        let context = RenderContext(values)
        var headers = [HTTPHeaderField("Content-Type", contentType)]
        if let auth = http.auth {
            headers += try await authHeaders(auth, context: context, values: values, body: fetched.body, job: job, now: now)
        }
        let url = try renderURL(upload.url, context: context)
        let answer = try await mediaStep("uploading the media") {
            let budget = try self.remaining(until: deadline)
            return try await self.runtime.execute(HTTPRequest(
                method: upload.method, url: url, headers: headers, body: fetched.body, timeout: budget,
                connectTimeout: min(budget, .seconds(10)), restrictToPublicAddresses: self.restrictToPublicAddresses,
                caFile: http.caFile))
        }
        var result = ResponseClassifier.classify(answer, rules: upload.response, now: Date())
        guard result.outcome == .success else {
            result.error = "uploading the media: " + (result.error ?? "")
            throw ProviderFailure(result)
        }
        guard let uploaded = ResponseClassifier.parseJSON(answer.body)?.value(atPath: upload.resultPath).flatMap(ResponseClassifier.scalarText)
        else {
            throw ProviderFailure(.permanentFailure, "uploading the media: the answer has no \(upload.resultPath)", httpStatus: answer.status)
        }
        described["result"] = .string(uploaded)
        return ["upload": .object(described)]
    }

    /// GETs a file a message points at (an image to upload, an attachment): through the SSRF guard like
    /// every request, redirects not followed, at most `maxBytes`. The errors name `what` and are
    /// classified as for a send: 4xx, empty or too large permanent; 5xx, 408/425/429 and timeouts transient.
    func fetchMedia(
        _ url: String, what: String, limit: String, maxBytes: Int, deadline: ContinuousClock.Instant
    ) async throws -> HTTPResponse {
        let fetched = try await mediaStep("fetching \(what)") {
            let budget = try self.remaining(until: deadline)
            return try await self.runtime.execute(HTTPRequest(
                method: "GET", url: url, headers: [HTTPHeaderField("Accept", "*/*")], timeout: budget,
                connectTimeout: min(budget, .seconds(10)), restrictToPublicAddresses: self.restrictToPublicAddresses,
                maxResponseBodyBytes: maxBytes))
        }
        guard (200...299).contains(fetched.status) else {
            let outcome: AttemptOutcome = [408, 425, 429].contains(fetched.status) || fetched.status >= 500 ? .transientFailure : .permanentFailure
            throw ProviderFailure(outcome, "fetching \(what): the URL answered HTTP \(fetched.status)", httpStatus: fetched.status)
        }
        guard !fetched.bodyTruncated else { throw ProviderFailure.permanent("fetching \(what): it is over \(limit) (\(maxBytes) bytes)") }
        guard !fetched.body.isEmpty else { throw ProviderFailure.permanent("fetching \(what): the URL answered an empty body") }
        return fetched
    }

    /// A fetch or an upload that got no answer. Neither sent the message, so even a transfer that
    /// may have reached the server is only transient: repeating it costs a duplicate upload at most.
    private func mediaStep(_ what: String, _ body: () async throws -> HTTPResponse) async throws -> HTTPResponse {
        do {
            return try await body()
        } catch {
            var result = ResponseClassifier.classify(error)
            if result.outcome == .ambiguous { result.outcome = .transientFailure }
            result.error = "\(what): " + (result.error ?? "")
            throw ProviderFailure(result)
        }
    }

    /// The last path segment of a URL (percent-decoded), or "media".
    static func filename(fromURL url: String) -> String {
        let path = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
        let last = path.split(separator: "/").last.map(String.init) ?? ""
        let decoded = last.removingPercentEncoding ?? last
        return decoded.isEmpty || path.hasSuffix("/") || !path.dropFirst(8).contains("/") ? "media" : decoded
    }

    /// Serialises a JSON body: template leaves rendered as text and written as JSON strings,
    /// `{$value: path}` copied from the context (null when absent), literals as they are.
    static func writeJSON(_ value: HTTPProviderSpec.BodyValue, context: RenderContext, values: JSONValue, into out: inout String) {
        switch value {
        case .template(let template):
            JSONWriter.writeString(template.render(context), into: &out)
        case .contextValue(let path):
            JSONWriter.write(values.value(atPath: path) ?? .null, into: &out)
        case .literal(let json):
            JSONWriter.write(json, into: &out)
        case .conditional:
            if let chosen = chosen(value, values: values) {
                writeJSON(chosen, context: context, values: values, into: &out)
            } else {
                out += "null"
            }
        case .array(let elements):
            JSONWriter.writeArray(elements.lazy.compactMap { chosen($0, values: values) }, into: &out) { element, out in
                writeJSON(element, context: context, values: values, into: &out)
            }
        case .object(let members):
            let present = members.lazy.compactMap { member in chosen(member.value, values: values).map { (key: member.key, value: $0) } }
            JSONWriter.writeObject(present, into: &out) { member, out in
                writeJSON(member, context: context, values: values, into: &out)
            }
        }
    }

    /// The node a `{$if}` stands for (nested ones followed), or nil when it leaves itself out; any other
    /// node is itself.
    static func chosen(_ value: HTTPProviderSpec.BodyValue, values: JSONValue) -> HTTPProviderSpec.BodyValue? {
        guard case .conditional(let path, let then, let otherwise) = value else { return value }
        let branch = isPresent(values.value(atPath: path)) ? then : otherwise
        return branch.flatMap { chosen($0, values: values) }
    }

    /// Present: there, and not null, false, "" or an empty array or object.
    static func isPresent(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?, .bool(false)?: false
        case .string(let text)?: !text.isEmpty
        case .array(let items)?: !items.isEmpty
        case .object(let members)?: !members.isEmpty
        default: true
        }
    }

    // MARK: Auth

    func authHeaders(
        _ auth: HTTPProviderSpec.Auth, context: RenderContext, values: [String: JSONValue], body: [UInt8], job: DeliveryJob, now: Date
    ) async throws -> [HTTPHeaderField] {
        switch auth {
        case .basic(let username, let password):
            let credentials = Array((username.render(context) + ":" + password.render(context)).utf8)
            return [HTTPHeaderField("Authorization", "Basic " + Data(credentials).base64EncodedString())]

        case .bearer(let token):
            return [HTTPHeaderField("Authorization", "Bearer " + Escaping.headerSafe(token.render(context)))]

        case .hmac(let hmac):
            let secret = hmac.secret, signed = hmac.signed
            let message: [UInt8]
            if let signed {
                // The signed template also sees the body it signs, as `{{body}}`.
                var withBody = values
                withBody["body"] = .string(String(decoding: body, as: UTF8.self))
                message = Array(signed.render(RenderContext(withBody)).utf8)
            } else {
                message = body
            }
            let mac = HMACSigner.signature(message, secret: Array(secret.render(context).utf8), algorithm: hmac.algorithm)
            return [HTTPHeaderField(hmac.header, Escaping.headerSafe(hmac.prefix) + HMACSigner.encode(mac, hmac.encoding))]

        case .standardWebhooks(let secret):
            guard let key = StandardWebhooks.key(fromSecret: secret.render(context)) else {
                throw ProviderFailure.permanent("standard_webhooks: the secret must be 'whsec_' followed by base64 of 16 to 64 bytes")
            }
            let id = StandardWebhooks.messageID(deliveryID: job.deliveryID)
            let timestamp = Int(now.timeIntervalSince1970.rounded(.down))
            return [
                HTTPHeaderField("webhook-id", id),
                HTTPHeaderField("webhook-timestamp", String(timestamp)),
                HTTPHeaderField("webhook-signature", StandardWebhooks.signature(key: key, id: id, timestamp: timestamp, body: body)),
            ]

        case .googleServiceAccount(let credentials, let scope):
            let json = credentials.render(context)
            let account = try GoogleServiceAccount(json: json)
            let fingerprint = Array(SHA256.hash(data: Array((json + "\n" + scope).utf8)))
            let token = try await accessTokens.token(fingerprint: fingerprint, now: now) { [self] in
                try await self.fetchGoogleToken(account: account, scope: scope)
            }
            return [HTTPHeaderField("Authorization", "Bearer " + Escaping.headerSafe(token))]

        case .apnsJWT(let keyID, let teamID, let privateKey):
            let token = try apnsTokens.token(
                keyID: keyID.render(context).trimmingCharacters(in: .whitespacesAndNewlines),
                teamID: teamID.render(context).trimmingCharacters(in: .whitespacesAndNewlines),
                privateKeyPEM: privateKey.render(context), now: now)
            return [HTTPHeaderField("authorization", "bearer " + token)]
        }
    }

    /// The OAuth 2.0 JWT-bearer grant (RFC 7523) against the account's `token_uri`, through the same runtime.
    func fetchGoogleToken(account: GoogleServiceAccount, scope: String) async throws -> AccessToken {
        let now = Date()
        let assertion = try account.assertion(scope: scope, now: now)
        let body = ProviderEncoding.formBody([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion),
        ])
        let request = HTTPRequest(
            method: "POST", url: account.tokenURI,
            headers: [HTTPHeaderField("Content-Type", "application/x-www-form-urlencoded"), HTTPHeaderField("Accept", "application/json")],
            body: Array(body.utf8), timeout: timeout, connectTimeout: min(timeout, .seconds(10)),
            restrictToPublicAddresses: restrictToPublicAddresses)
        let response: HTTPResponse
        do {
            response = try await runtime.execute(request)
        } catch {
            var result = ResponseClassifier.classify(error)
            // Nothing was delivered yet: a token request that may have been sent is safe to repeat.
            if result.outcome == .ambiguous { result.outcome = .transientFailure }
            throw ProviderFailure(result.outcome, "google_service_account: token request failed: \(result.error ?? "")")
        }
        guard (200...299).contains(response.status) else {
            let transient = StatusSet.defaultTransient.contains(response.status)
            throw ProviderFailure(
                transient ? .transientFailure : .permanentFailure,
                "google_service_account: token request failed: " + ResponseClassifier.errorText(status: response.status, body: response.body),
                retryAfter: response.header("Retry-After").flatMap { RetryAfter.parse($0, now: Date()) })
        }
        guard let answer = ResponseClassifier.parseJSON(response.body), let token = answer["access_token"]?.stringValue, !token.isEmpty
        else {
            throw ProviderFailure(.transientFailure, "google_service_account: the token answer has no access_token")
        }
        let expiresIn: Double =
            switch answer["expires_in"] {
            case .integer(let seconds)?: Double(seconds)
            case .double(let seconds)?: seconds
            case .string(let text)?: Double(text) ?? 3600
            default: 3600
            }
        // Renewed 60 s before it expires (half-way for tokens that live less than two minutes).
        let margin = expiresIn > 120 ? 60 : expiresIn / 2
        return AccessToken(value: token, refreshAt: now.addingTimeInterval(expiresIn - margin))
    }
}
