import Crypto
import Foundation

/// Signs webhook requests per Standard Webhooks v1: HMAC-SHA256 over `id.timestamp.body`,
/// sent as `webhook-signature: v1,<base64>`.
public struct WebhookSigner: Sendable {
    private let key: SymmetricKey

    public struct InvalidSecret: Error, Sendable, CustomStringConvertible {
        public var description: String { "the webhook secret must be 'whsec_' followed by base64 (24 to 64 bytes)" }
    }

    /// `secret` as Standard Webhooks writes it: `whsec_` + base64 of the key bytes.
    public init(secret: String) throws {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let bytes = Data(base64Encoded: encoded), (16...64).contains(bytes.count) else { throw InvalidSecret() }
        key = SymmetricKey(data: bytes)
    }

    public func signature(id: String, timestamp: Int, body: [UInt8]) -> String {
        var content = Array("\(id).\(timestamp).".utf8)
        content.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: content, using: key)
        return "v1," + Data(mac).base64EncodedString()
    }
}
