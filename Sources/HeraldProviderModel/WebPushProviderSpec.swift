import Foundation
import HeraldCore
import HeraldTemplating

/// A Web Push provider (RFC 8030): the payload encrypted for each subscription with `aes128gcm`
/// (RFC 8291) and the request signed with VAPID (RFC 8292). The recipient is the subscription the
/// browser's `PushSubscription.toJSON()` gives: `{endpoint, keys: {p256dh, auth}}`.
public struct WebPushProviderSpec: Sendable {
    /// The VAPID `sub` claim: a `mailto:` or `https:` URI the push service can reach the sender at.
    public var subject: CompiledTemplate
    /// The VAPID private key: PEM (SEC 1 or PKCS #8), or base64url of the 32-byte scalar (the
    /// form `web-push generate-vapid-keys` prints). A secret, never logged.
    public var privateKey: CompiledTemplate
    /// What the service worker receives once decrypted: a JSON structure or a text template, written
    /// like an HTTP provider's `body`.
    public var payload: HTTPProviderSpec.Body
    /// The `TTL` header: how long the push service keeps the message for an offline device.
    public var ttl: Duration
    /// The `Urgency` header (RFC 8030 §5.3); nil sends none (the push service assumes `normal`).
    public var urgency: Urgency?
    /// The `Topic` header (RFC 8030 §5.4): a newer message with the same topic replaces an undelivered
    /// one. Rendered per message; at most 32 characters of the base64url alphabet.
    public var topic: CompiledTemplate?
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
        subject: CompiledTemplate, privateKey: CompiledTemplate, payload: HTTPProviderSpec.Body, ttl: Duration = .seconds(28 * 24 * 3600),
        urgency: Urgency? = nil, topic: CompiledTemplate? = nil, recordSize: Int = Self.defaultRecordSize, padTo: Int = 0,
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
