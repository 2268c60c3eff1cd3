import HeraldProviders

/// Signs the built-in webhook channel's requests per Standard Webhooks v1 — the same signing the
/// `standard_webhooks` provider auth uses (`StandardWebhooks`), with the secret checked once up front.
public struct WebhookSigner: Sendable {
    private let key: [UInt8]

    public struct InvalidSecret: Error, Sendable, CustomStringConvertible {
        public var description: String { "the webhook secret must be 'whsec_' followed by base64 (24 to 64 bytes)" }
    }

    /// `secret` as Standard Webhooks writes it: `whsec_` + base64 of the key bytes.
    public init(secret: String) throws {
        guard let key = StandardWebhooks.key(fromSecret: secret), (16...64).contains(key.count) else { throw InvalidSecret() }
        self.key = key
    }

    public func signature(id: String, timestamp: Int, body: [UInt8]) -> String {
        StandardWebhooks.signature(key: key, id: id, timestamp: timestamp, body: body)
    }
}
