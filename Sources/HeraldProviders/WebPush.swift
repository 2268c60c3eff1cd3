import Crypto
import Foundation
import HeraldCore
import HeraldProviderModel
import Synchronization

/// Why a Web Push message could not be encrypted or signed. Each is permanent: retrying the same
/// subscription or key gives the same answer.
public struct WebPushError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// `keys.p256dh` is not a point on P-256.
        case invalidSubscriptionKey = "invalid_subscription_key"
        /// The padded plaintext does not fit one record, or the body exceeds what push services take.
        case payloadTooLarge = "payload_too_large"
        /// The VAPID private key is neither PEM nor base64url of 32 bytes.
        case invalidVAPIDKey = "invalid_vapid_key"
        /// The endpoint has no origin to put in `aud`.
        case invalidEndpoint = "invalid_endpoint"
        case signingFailed = "signing_failed"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "web push \(code.rawValue): \(message)" }
}

/// RFC 8291 message encryption: the `aes128gcm` content coding of RFC 8188, keyed by ECDH between
/// a fresh application-server key and the subscription's `p256dh`, mixed with its `auth` secret.
public enum WebPushEncryption {
    /// salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid (the 65-byte application-server public key).
    public static let headerLength = 16 + 4 + 1 + 65
    static let tagLength = 16

    /// The content-encryption key and nonce of one message (RFC 8291 §3.4, RFC 8188 §2.2–2.3).
    public struct DerivedKeys: Sendable, Hashable {
        public var ecdhSecret: [UInt8]
        public var ikm: [UInt8]
        public var prk: [UInt8]
        public var contentEncryptionKey: [UInt8]
        public var nonce: [UInt8]
    }

    /// Derives the keys for one message:
    /// - `PRK_key = HKDF-Extract(salt: auth_secret, IKM: ecdh_secret)`,
    ///   `IKM = HKDF-Expand(PRK_key, "WebPush: info" ‖ 0x00 ‖ ua_public ‖ as_public, 32)`;
    /// - `PRK = HKDF-Extract(salt, IKM)`; `CEK = HKDF-Expand(PRK, "Content-Encoding: aes128gcm" ‖ 0x00, 16)`,
    ///   `NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce" ‖ 0x00, 12)`.
    public static func deriveKeys(
        userAgentPublicKey: [UInt8], authSecret: [UInt8], salt: [UInt8], serverKey: P256.KeyAgreement.PrivateKey
    ) throws(WebPushError) -> DerivedKeys {
        let userAgentKey: P256.KeyAgreement.PublicKey
        do {
            userAgentKey = try P256.KeyAgreement.PublicKey(x963Representation: userAgentPublicKey)
        } catch {
            throw WebPushError(.invalidSubscriptionKey, "keys.p256dh is not an uncompressed point on P-256")
        }
        let shared: SharedSecret
        do {
            shared = try serverKey.sharedSecretFromKeyAgreement(with: userAgentKey)
        } catch {
            throw WebPushError(.invalidSubscriptionKey, "no ECDH secret with keys.p256dh: \(error)")
        }
        let ecdhSecret = shared.withUnsafeBytes { Array($0) }
        let keyInfo = Array("WebPush: info".utf8) + [0] + userAgentPublicKey + Array(serverKey.publicKey.x963Representation)
        let keyPRK = HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: ecdhSecret), salt: authSecret)
        let ikm = bytes(HKDF<SHA256>.expand(pseudoRandomKey: keyPRK, info: keyInfo, outputByteCount: 32))
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: ikm), salt: salt)
        let cek = bytes(HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Array("Content-Encoding: aes128gcm".utf8) + [0], outputByteCount: 16))
        let nonce = bytes(HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Array("Content-Encoding: nonce".utf8) + [0], outputByteCount: 12))
        return DerivedKeys(ecdhSecret: ecdhSecret, ikm: ikm, prk: Array(prk), contentEncryptionKey: cek, nonce: nonce)
    }

    /// The body of a push message: the aes128gcm header, then one record — the plaintext, the last-record
    /// delimiter 0x02, zeros up to `padTo` bytes of plaintext, sealed with AES-128-GCM (sequence number 0,
    /// so the nonce is used as derived). A fresh salt and server key per message unless given (tests).
    public static func encrypt(
        _ plaintext: [UInt8], userAgentPublicKey: [UInt8], authSecret: [UInt8],
        recordSize: Int = WebPushProviderSpec.defaultRecordSize, padTo: Int = 0,
        salt: [UInt8]? = nil, serverKey: P256.KeyAgreement.PrivateKey = P256.KeyAgreement.PrivateKey()
    ) throws(WebPushError) -> [UInt8] {
        let padding = max(0, padTo - plaintext.count)
        let recordLength = plaintext.count + 1 + padding + tagLength
        guard recordLength <= recordSize else {
            throw WebPushError(
                .payloadTooLarge,
                "the payload is \(plaintext.count) bytes; one record of \(recordSize) bytes holds at most \(recordSize - 1 - tagLength)")
        }
        guard headerLength + recordLength <= WebPushProviderSpec.maximumBody else {
            throw WebPushError(
                .payloadTooLarge,
                "the payload is \(plaintext.count) bytes; push services need not take more than \(WebPushProviderSpec.maximumPlaintext)")
        }
        let salt = salt ?? (0..<16).map { _ in UInt8.random(in: 0...255) }
        let keys = try deriveKeys(userAgentPublicKey: userAgentPublicKey, authSecret: authSecret, salt: salt, serverKey: serverKey)
        let record = plaintext + [0x02] + [UInt8](repeating: 0, count: padding)
        let sealed: AES.GCM.SealedBox
        do {
            sealed = try AES.GCM.seal(
                record, using: SymmetricKey(data: keys.contentEncryptionKey), nonce: try AES.GCM.Nonce(data: keys.nonce))
        } catch {
            throw WebPushError(.signingFailed, "AES-128-GCM failed: \(error)")
        }
        var body = salt
        body.reserveCapacity(headerLength + recordLength)
        withUnsafeBytes(of: UInt32(recordSize).bigEndian) { body.append(contentsOf: $0) }
        let serverPublic = Array(serverKey.publicKey.x963Representation)
        body.append(UInt8(serverPublic.count))
        body += serverPublic
        body += Array(sealed.ciphertext)
        body += Array(sealed.tag)
        return body
    }

    private static func bytes(_ key: SymmetricKey) -> [UInt8] { key.withUnsafeBytes { Array($0) } }
}

/// RFC 8292 VAPID: the application server's P-256 key, and the ES256 JWT `{aud, exp, sub}` a push
/// service checks, sent as `Authorization: vapid t=<jwt>,k=<public key>`.
public struct VAPIDKey: Sendable {
    let signingKey: P256.Signing.PrivateKey

    /// PEM (`EC PRIVATE KEY` or PKCS #8 `PRIVATE KEY`), or base64url of the 32-byte private scalar.
    public init(_ text: String) throws(WebPushError) {
        let trimmed = JWT.normalizedPEM(text)
        if trimmed.hasPrefix("-----BEGIN") {
            guard let key = try? P256.Signing.PrivateKey(pemRepresentation: trimmed) else {
                throw WebPushError(.invalidVAPIDKey, "private_key is PEM but not a P-256 private key")
            }
            signingKey = key
        } else {
            guard let raw = Base64URL.decode(trimmed), raw.count == 32, let key = try? P256.Signing.PrivateKey(rawRepresentation: raw) else {
                throw WebPushError(.invalidVAPIDKey, "private_key must be a PEM P-256 key or base64url of its 32 bytes")
            }
            signingKey = key
        }
    }

    public init(_ key: P256.Signing.PrivateKey) { signingKey = key }

    /// The `k` parameter: base64url of the uncompressed public key (what browsers get as `applicationServerKey`).
    public var publicKeyBase64URL: String { Base64URL.encode(signingKey.publicKey.x963Representation) }
}

public enum VAPID {
    /// The `aud` claim: the origin (RFC 6454) of the push resource URL — lower-case scheme and host,
    /// the port only when it is not the scheme's default.
    public static func audience(ofEndpoint endpoint: String) -> String? {
        guard let components = URLComponents(string: endpoint), let scheme = components.scheme?.lowercased(),
            scheme == "https" || scheme == "http", var host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
        let defaultPort = scheme == "https" ? 443 : 80
        let port = components.port.flatMap { $0 == defaultPort ? nil : $0 }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    /// The signed token: header `{"alg":"ES256","typ":"JWT"}`, claims `{aud, exp, sub}`.
    public static func token(audience: String, subject: String, expiresAt: Date, key: VAPIDKey) throws(WebPushError) -> String {
        do {
            return try JWT.es256(
                header: ["typ": "JWT", "alg": "ES256"],
                claims: [
                    "aud": .string(audience), "exp": .integer(Int64(expiresAt.timeIntervalSince1970.rounded(.down))),
                    "sub": .string(subject),
                ],
                key: key.signingKey)
        } catch {
            throw WebPushError(.signingFailed, "VAPID signing failed: \(error)")
        }
    }

    /// `vapid t=<token>,k=<public key>` (RFC 8292 §3). No space after the comma (RFC 7235 allows it
    /// either way): some verifiers, py_vapid among them, split the header at its last space.
    public static func authorization(token: String, key: VAPIDKey) -> String {
        "vapid t=\(token),k=\(key.publicKeyBase64URL)"
    }
}

/// VAPID tokens per push service origin, signed once and reused for half their lifetime (a push
/// service sees the same token many times, and signing is not free). Bounded: push services are few.
final class VAPIDTokenCache: Sendable {
    private struct Entry {
        var token: String
        var reuseUntil: Date
    }

    static let capacity = 64
    private let entries = Mutex<[[UInt8]: Entry]>([:])

    /// A token for `audience`, valid until `now + lifetime` (given whole: at most 24 h, RFC 8292 §2).
    func authorization(
        audience: String, subject: String, key: VAPIDKey, keyText: String, lifetime: Duration, now: Date
    ) throws(WebPushError) -> String {
        let fingerprint = Array(SHA256.hash(data: Array("\(audience)\n\(subject)\n\(keyText)\n\(lifetime)".utf8)))
        if let entry = entries.withLock({ $0[fingerprint] }), now < entry.reuseUntil {
            return entry.token
        }
        // A minute short of the 24 h limit at most, so a push service whose clock is behind still accepts it.
        let expiresAt = now.addingTimeInterval(min(lifetime, WebPushProviderSpec.maximumTokenLifetime - .seconds(60)).timeInterval)
        let header = VAPID.authorization(
            token: try VAPID.token(audience: audience, subject: subject, expiresAt: expiresAt, key: key), key: key)
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll() }
            entries[fingerprint] = Entry(token: header, reuseUntil: now.addingTimeInterval(lifetime.timeInterval / 2))
        }
        return header
    }
}
