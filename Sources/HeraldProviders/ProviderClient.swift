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
        do {
            request = try await buildHTTPRequest(http, job: job, now: now)
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

    func buildHTTPRequest(_ http: HTTPProviderSpec, job: DeliveryJob, now: Date) async throws -> HTTPRequest {
        let values = try context(for: job, now: now)
        let context = RenderContext(values)

        let url = try renderURL(http, context: context)
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

    func renderURL(_ http: HTTPProviderSpec, context: RenderContext) throws(ProviderFailure) -> String {
        let rendered = http.url.render(context)
        if http.urlIsSingleValue {
            let url = rendered.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !url.isEmpty else { throw .permanent("url: the value \(http.url.source.source) is empty") }
            return url
        }
        // Values are percent-encoded, so they can't add a '/', '?' or '#'; but a value of exactly "." or ".."
        // between two literal slashes would still be a dot segment, which moves up the path: refuse it.
        if Self.hasDotSegment(rendered), !Self.hasDotSegment(http.url.source.source) {
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
        case .array(let elements):
            JSONWriter.writeArray(elements, into: &out) { element, out in
                writeJSON(element, context: context, values: values, into: &out)
            }
        case .object(let members):
            JSONWriter.writeObject(members.lazy.map { ($0.key, $0.value) }, into: &out) { member, out in
                writeJSON(member, context: context, values: values, into: &out)
            }
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
