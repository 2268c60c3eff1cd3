import Foundation

/// A Web Push provider (RFC 8030): the payload encrypted for each subscription with `aes128gcm`
/// (RFC 8291) and the request signed with VAPID (RFC 8292). The recipient is the subscription the
/// browser's `PushSubscription.toJSON()` gives: `{endpoint, keys: {p256dh, auth}}`.
public struct WebPushProviderSpec: Sendable, Hashable {
    /// The VAPID `sub` claim: a `mailto:` or `https:` URI the push service can reach the sender at.
    public var subject: TemplateText
    /// The VAPID private key: PEM (SEC 1 or PKCS #8), or base64url of the 32-byte scalar (the
    /// form `web-push generate-vapid-keys` prints). A secret, never logged.
    public var privateKey: TemplateText
    /// What the service worker receives once decrypted: a JSON structure or a text template, written
    /// like an HTTP provider's `body`.
    public var payload: HTTPProviderSpec.Body
    /// The `TTL` header: how long the push service keeps the message for an offline device.
    public var ttl: Duration
    /// The `Urgency` header (RFC 8030 §5.3); nil sends none (the push service assumes `normal`).
    public var urgency: Urgency?
    /// The `Topic` header (RFC 8030 §5.4): a newer message with the same topic replaces an undelivered
    /// one. Rendered per message; at most 32 characters of the base64url alphabet.
    public var topic: TemplateText?
    /// The `rs` of the aes128gcm header. The message is one record (RFC 8291 §4), so the padded
    /// plaintext plus the delimiter and the 16-byte tag must fit in it.
    public var recordSize: Int
    /// Pads the plaintext with zeros up to this many bytes (0: no padding), so that message sizes
    /// don't tell what they contain.
    public var padTo: Int
    /// How long a VAPID token is valid (its `exp`); at most 24 hours (RFC 8292 §2).
    public var tokenLifetime: Duration

    public enum Urgency: String, Sendable, Hashable, CaseIterable {
        case veryLow = "very-low", low, normal, high
    }

    /// RFC 8030 §7.2: a push service must accept 4096 bytes of payload, so that is the default record size.
    public static let defaultRecordSize = 4096
    /// The largest body a push service must accept (RFC 8030 §7.2).
    public static let maximumBody = 4096
    /// What fits in `maximumBody` after the 86-byte header, the delimiter and the tag (RFC 8291 §4).
    public static let maximumPlaintext = maximumBody - 86 - 1 - 16
    public static let maximumTokenLifetime: Duration = .seconds(24 * 3600)

    public init(
        subject: TemplateText, privateKey: TemplateText, payload: HTTPProviderSpec.Body, ttl: Duration = .seconds(28 * 24 * 3600),
        urgency: Urgency? = nil, topic: TemplateText? = nil, recordSize: Int = Self.defaultRecordSize, padTo: Int = 0,
        tokenLifetime: Duration = .seconds(12 * 3600)
    ) {
        self.subject = subject
        self.privateKey = privateKey
        self.payload = payload
        self.ttl = ttl
        self.urgency = urgency
        self.topic = topic
        self.recordSize = recordSize
        self.padTo = padTo
        self.tokenLifetime = tokenLifetime
    }
}

/// A push subscription as a browser gives it (`PushSubscription.toJSON()`): where to send, and the
/// keys the payload is encrypted for. Extra members (`expirationTime`) are allowed and ignored.
public struct WebPushSubscription: Sendable, Hashable {
    /// The push resource URL of the push service (FCM, Mozilla autopush, Apple, Microsoft, …).
    public var endpoint: String
    /// The user agent's P-256 public key, uncompressed (65 bytes, `0x04‖X‖Y`).
    public var p256dh: [UInt8]
    /// The 16-byte authentication secret.
    public var auth: [UInt8]

    public init(endpoint: String, p256dh: [UInt8], auth: [UInt8]) {
        self.endpoint = endpoint
        self.p256dh = p256dh
        self.auth = auth
    }

    /// One thing wrong with a subscription: the member (`endpoint`, `keys.p256dh`, …; empty for the
    /// whole value) and why.
    public struct Problem: Sendable, Hashable {
        public var member: String
        public var message: String
    }

    /// Every problem a value has as a subscription.
    public struct Invalid: Error, Sendable, Hashable {
        public var problems: [Problem]
    }

    /// Reads a subscription; every problem found, or the subscription. The endpoint must be `https`
    /// unless `allowHTTP` (local development and tests).
    public static func parse(_ value: JSONValue, allowHTTP: Bool = false) -> Result<WebPushSubscription, Invalid> {
        guard case .object(let members) = value else {
            return .failure(Invalid(problems: [Problem(member: "", message: "must be a push subscription object {endpoint, keys: {p256dh, auth}}, not \(value.typeName)")]))
        }
        var problems: [Problem] = []
        var endpoint = ""
        switch members["endpoint"] {
        case .string(let text)?:
            let lowered = text.lowercased()
            if !(lowered.hasPrefix("https://") || (allowHTTP && lowered.hasPrefix("http://"))) {
                problems.append(Problem(member: "endpoint", message: "must be an https:// push service URL"))
            } else if let problem = RecipientField(name: "endpoint", format: .url).problem(with: text) {
                problems.append(Problem(member: "endpoint", message: problem))
            } else {
                endpoint = text
            }
        case nil: problems.append(Problem(member: "endpoint", message: "is required"))
        case let other?: problems.append(Problem(member: "endpoint", message: "must be a string, not \(other.typeName)"))
        }
        var p256dh: [UInt8] = []
        var auth: [UInt8] = []
        switch members["keys"] {
        case .object(let keys)?:
            p256dh = key(keys["p256dh"], member: "keys.p256dh", length: 65, what: "an uncompressed P-256 public key", problems: &problems)
            if p256dh.count == 65, p256dh[0] != 0x04 {
                problems.append(Problem(member: "keys.p256dh", message: "must be an uncompressed P-256 point (starting with 0x04)"))
            }
            auth = key(keys["auth"], member: "keys.auth", length: 16, what: "the 16-byte authentication secret", problems: &problems)
        case nil: problems.append(Problem(member: "keys", message: "is required: {p256dh, auth}"))
        case let other?: problems.append(Problem(member: "keys", message: "must be an object, not \(other.typeName)"))
        }
        guard problems.isEmpty else { return .failure(Invalid(problems: problems)) }
        return .success(WebPushSubscription(endpoint: endpoint, p256dh: p256dh, auth: auth))
    }

    private static func key(_ value: JSONValue?, member: String, length: Int, what: String, problems: inout [Problem]) -> [UInt8] {
        switch value {
        case .string(let text)?:
            guard let bytes = Base64URL.decode(text.trimmingCharacters(in: .whitespaces)), bytes.count == length else {
                problems.append(Problem(member: member, message: "must be base64url of \(what) (\(length) bytes)"))
                return []
            }
            return Array(bytes)
        case nil:
            problems.append(Problem(member: member, message: "is required"))
        case let other?:
            problems.append(Problem(member: member, message: "must be a string, not \(other.typeName)"))
        }
        return []
    }
}
