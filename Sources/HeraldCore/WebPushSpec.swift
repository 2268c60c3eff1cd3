import Foundation

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
