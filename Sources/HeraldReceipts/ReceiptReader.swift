import Crypto
import Foundation
import HeraldCore
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating

/// A provider's status callback as the gateway received it.
public struct ReceiptRequest: Sendable {
    public var method: String
    /// The path as requested (`/v1/receipts/sms-twilio/twilio`).
    public var path: String
    /// The query as requested, still percent-encoded (signatures cover it as sent); nil: none.
    public var rawQuery: String?
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, path: String, rawQuery: String?, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method.uppercased()
        self.path = path
        self.rawQuery = rawQuery.flatMap { $0.isEmpty ? nil : $0 }
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    var mediaType: String {
        (header("Content-Type") ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    var queryParameters: [(name: String, value: String)] { Self.formDecode(rawQuery ?? "") }

    /// POST parameters of an `application/x-www-form-urlencoded` body.
    var formParameters: [(name: String, value: String)] {
        guard method == "POST", mediaType == "application/x-www-form-urlencoded" else { return [] }
        return Self.formDecode(String(decoding: body, as: UTF8.self))
    }

    var json: JSONValue? {
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            return nil
        }
        return try? JSONParser.parse(body)
    }

    /// A field by name: a dotted path in a JSON body, else a form field, else a query parameter.
    func field(_ name: String) -> String? {
        if let json {
            switch json.value(atPath: name) {
            case .string(let text)?: return text
            case .integer(let number)?: return String(number)
            case .bool(let flag)?: return flag ? "true" : "false"
            default: break
            }
        }
        if let value = formParameters.first(where: { $0.name == name })?.value { return value }
        return queryParameters.first(where: { $0.name == name })?.value
    }

    /// `a=1&b=x+y` → pairs, `+` as space, percent-escapes decoded (an undecodable one is kept as is).
    static func formDecode(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}

/// A receipt whose origin was verified: which delivery, and what the provider said.
public struct Receipt: Sendable, Hashable {
    /// From the callback URL's token, or a signed body; nil: find the delivery by `providerMessageID`.
    public var deliveryID: UUID?
    public var providerMessageID: String?
    public var providerStatus: String
    /// nil: a status the provider's `statuses:` does not map (an intermediate report).
    public var outcome: ReceiptOutcome?
    public var detail: String?
}

/// Why a callback was refused.
public struct ReceiptRejection: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Its origin could not be verified (403).
        case forbidden
        /// Verified, but it does not say what it must (400).
        case invalid
        /// Herald lacks what verifying needs (the public URL, the receipt secret, the provider's secret): 503.
        case unconfigured
    }

    public var kind: Kind
    public var description: String

    static func forbidden(_ text: String) -> Self { Self(kind: .forbidden, description: text) }
    static func invalid(_ text: String) -> Self { Self(kind: .invalid, description: text) }
    static func unconfigured(_ text: String) -> Self { Self(kind: .unconfigured, description: text) }
}

/// Reads one provider's status callbacks by its `receipts:` declaration: verifies where it came from,
/// then finds the delivery, status, message id and detail in it. Pure apart from reading secrets.
///
/// The callback is authenticated by the provider's proof, not by an API key: a provider can't be
/// given one to send (Twilio signs with its auth token, Kannel only calls a URL), a key in a URL
/// would sit in every proxy's and provider's logs with the powers of a tenant, and a receipt's
/// authority is over one delivery, which the per-delivery token (or the provider's signature)
/// proves and an API key wouldn't.
public struct ReceiptReader: Sendable {
    public let channel: String
    public let provider: String
    public let spec: ReceiptSpec

    /// How far a Standard Webhooks timestamp may be from now (the specification's 5 minutes).
    public static let timestampTolerance: TimeInterval = 300

    public init(channel: String, provider: String, spec: ReceiptSpec) {
        self.channel = channel
        self.provider = provider
        self.spec = spec
    }

    public func read(_ request: ReceiptRequest, links: ReceiptLinks?, secrets: SecretResolver, now: Date) throws(ReceiptRejection) -> Receipt {
        let tokenDelivery = try verifiedTokenDelivery(request, links: links)
        switch spec.verification {
        case .deliveryToken:
            guard tokenDelivery != nil else {
                throw .forbidden("the callback URL carries no delivery token (d and t): use {{receipts.url}} as the provider's callback URL")
            }
        case .twilioSignature:
            guard let links else {
                throw .unconfigured("HERALD_PUBLIC_URL is not set: the URL Twilio signed can't be known")
            }
            let token = try resolvedSecret(secrets)
            guard let signature = request.header("X-Twilio-Signature"), !signature.isEmpty else {
                throw .forbidden("X-Twilio-Signature is missing")
            }
            let url = links.publicURL + request.path + (request.rawQuery.map { "?" + $0 } ?? "")
            guard TwilioSignature.isValid(signature, url: url, parameters: request.formParameters, authToken: token) else {
                throw .forbidden("X-Twilio-Signature does not match the request (HMAC-SHA1 of the URL and the sorted POST parameters)")
            }
        case .standardWebhooks:
            let secret = try resolvedSecret(secrets)
            guard let key = StandardWebhooks.key(fromSecret: secret) else {
                throw .unconfigured("the receipts secret of \(channel)/\(provider) is not a Standard Webhooks secret (whsec_ + base64)")
            }
            try StandardWebhooks.verify(request, key: key, now: now, tolerance: Self.timestampTolerance)
        }

        guard let status = request.field(spec.statusField), !status.isEmpty else {
            throw .invalid("the callback has no \(spec.statusField) (the provider's status)")
        }
        let messageID = spec.messageIDField.flatMap { request.field($0) }.flatMap { $0.isEmpty ? nil : $0 }
        var deliveryID = tokenDelivery
        if deliveryID == nil, let field = spec.deliveryIDField, let text = request.field(field), !text.isEmpty {
            guard let id = UUID(uuidString: text) else { throw .invalid("\(field) '\(text.prefix(64))' is not a delivery id") }
            deliveryID = id
        }
        guard deliveryID != nil || messageID != nil else {
            throw .invalid("the callback names no delivery: neither a delivery token in the URL nor a delivery or message id")
        }
        let detail = spec.detailField.flatMap { request.field($0) }.flatMap { $0.isEmpty ? nil : String($0.prefix(500)) }
        return Receipt(
            deliveryID: deliveryID, providerMessageID: messageID.map { String($0.prefix(200)) }, providerStatus: String(status.prefix(100)),
            outcome: spec.statuses[status], detail: detail)
    }

    /// The delivery id of a callback URL made by `{{receipts.url}}`, once its token checks out; nil when
    /// the URL has none. A wrong token is refused whatever else the callback carries.
    func verifiedTokenDelivery(_ request: ReceiptRequest, links: ReceiptLinks?) throws(ReceiptRejection) -> UUID? {
        let query = request.queryParameters
        guard let text = query.first(where: { $0.name == "d" })?.value else { return nil }
        guard let links else {
            throw .unconfigured("HERALD_PUBLIC_URL and HERALD_RECEIPT_SECRET are not set: delivery tokens can't be checked")
        }
        guard let id = UUID(uuidString: text), let token = query.first(where: { $0.name == "t" })?.value,
            links.verify(token: token, channel: channel, provider: provider, deliveryID: id)
        else {
            throw .forbidden("the delivery token in the callback URL is not valid for this delivery, channel and provider")
        }
        return id
    }

    func resolvedSecret(_ secrets: SecretResolver) throws(ReceiptRejection) -> String {
        guard let secret = spec.verification.secret else { return "" }
        var resolved: [String: JSONValue] = [:]
        for name in secret.secretNames {
            guard let value = secrets.value(name) else {
                throw .unconfigured("secret \(name) (receipts of \(channel)/\(provider)) is not set")
            }
            resolved[name] = .string(value)
        }
        return secret.render(RenderContext(["secrets": .object(resolved)]))
    }
}

/// Twilio's request signature (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the auth token,
/// over the full URL Twilio requested followed by each POST parameter's name and value, sorted by name
/// (then value). As Twilio's own validators do, the URL is also tried without a port and with the
/// scheme's default port, since proxies differ in what they keep.
public enum TwilioSignature {
    public static func compute(url: String, parameters: [(name: String, value: String)], authToken: String) -> String {
        var message = url
        for parameter in parameters.sorted(by: { ($0.name, $0.value) < ($1.name, $1.value) }) {
            message += parameter.name + parameter.value
        }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    public static func isValid(_ signature: String, url: String, parameters: [(name: String, value: String)], authToken: String) -> Bool {
        let given = Array(signature.trimmingCharacters(in: .whitespaces).utf8)
        return urlVariants(url).contains { variant in
            ConstantTime.equal(Array(compute(url: variant, parameters: parameters, authToken: authToken).utf8), given)
        }
    }

    /// The URL as given, without its port, and with the scheme's default port.
    static func urlVariants(_ url: String) -> [String] {
        guard var components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else { return [url] }
        var variants = [url]
        if components.port != nil {
            components.port = nil
            if let stripped = components.string { variants.append(stripped) }
        } else {
            components.port = scheme == "https" ? 443 : 80
            if let ported = components.string { variants.append(ported) }
        }
        return variants
    }
}

extension StandardWebhooks {
    /// Checks `webhook-id`, `webhook-timestamp` (within `tolerance` of now) and `webhook-signature`
    /// (any of its space-separated `v1,` signatures) over the exact body bytes.
    static func verify(_ request: ReceiptRequest, key: [UInt8], now: Date, tolerance: TimeInterval) throws(ReceiptRejection) {
        guard let id = request.header("webhook-id"), !id.isEmpty, let timestampText = request.header("webhook-timestamp"),
            let signatures = request.header("webhook-signature")
        else {
            throw .forbidden("webhook-id, webhook-timestamp and webhook-signature are required (Standard Webhooks)")
        }
        guard let timestamp = Int(timestampText.trimmingCharacters(in: .whitespaces)),
            abs(Double(timestamp) - now.timeIntervalSince1970) <= tolerance
        else {
            throw .forbidden("webhook-timestamp is not within \(Int(tolerance)) s of now")
        }
        let expected = Array(signature(key: key, id: id, timestamp: timestamp, body: request.body).utf8)
        let matches = signatures.split(separator: " ").contains { ConstantTime.equal(Array($0.utf8), expected) }
        guard matches else { throw .forbidden("webhook-signature does not match the body (Standard Webhooks v1)") }
    }
}
