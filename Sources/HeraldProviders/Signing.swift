import Crypto
import Foundation
import HeraldCore
import HeraldProviderModel
import Synchronization
import _CryptoExtras

/// HMAC signatures for `auth: {type: hmac}`.
public enum HMACSigner {
    public static func signature(
        _ message: [UInt8], secret: [UInt8], algorithm: HTTPProviderSpec.HMACAuth.Algorithm
    ) -> [UInt8] {
        let key = SymmetricKey(data: secret)
        switch algorithm {
        case .sha1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
        case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: message, using: key))
        }
    }

    public static func encode(_ mac: [UInt8], _ encoding: HTTPProviderSpec.HMACAuth.Encoding) -> String {
        switch encoding {
        case .hex: ProviderEncoding.hex(mac)
        case .base64: Data(mac).base64EncodedString()
        }
    }
}

/// Standard Webhooks v1 (symmetric): `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
/// keyed with the base64-decoded secret after its `whsec_` prefix.
public enum StandardWebhooks {
    /// The key bytes of a `whsec_…` secret; nil when it is not base64 of 16–64 bytes.
    public static func key(fromSecret secret: String) -> [UInt8]? {
        let trimmed = secret.trimmedOfWhitespaceAndNewlines
        let encoded = trimmed.hasPrefix("whsec_") ? String(trimmed.dropFirst("whsec_".count)) : trimmed
        guard let bytes = Data(base64Encoded: encoded), (16...64).contains(bytes.count) else { return nil }
        return Array(bytes)
    }

    public static func signature(key: [UInt8], id: String, timestamp: Int, body: [UInt8]) -> String {
        var content = Array("\(id).\(timestamp).".utf8)
        content.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: content, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }

    /// `msg_` + the delivery id without dashes: the same for every retry of a delivery.
    public static func messageID(deliveryID: UUID) -> String {
        "msg_" + deliveryID.hexadecimal(dashes: false)
    }
}

/// Compact JWS (RFC 7515) for the two provider tokens Herald signs.
public enum JWT {
    /// `base64url(header).base64url(claims)` — the signing input.
    static func signingInput(header: JSONValue, claims: JSONValue) -> String {
        ProviderEncoding.base64URL(Array(JSONWriter.string(header).utf8)) + "."
            + ProviderEncoding.base64URL(Array(JSONWriter.string(claims).utf8))
    }

    /// ES256: ECDSA P-256 with SHA-256; the signature is the raw 64-byte r‖s.
    public static func es256(header: JSONValue, claims: JSONValue, key: P256.Signing.PrivateKey) throws -> String {
        let input = signingInput(header: header, claims: claims)
        let signature = try key.signature(for: Array(input.utf8))
        return input + "." + ProviderEncoding.base64URL(signature.rawRepresentation)
    }

    /// RS256: RSASSA-PKCS1-v1_5 with SHA-256.
    public static func rs256(header: JSONValue, claims: JSONValue, key: _RSA.Signing.PrivateKey) throws -> String {
        let input = signingInput(header: header, claims: claims)
        let signature = try key.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        return input + "." + ProviderEncoding.base64URL(signature.rawRepresentation)
    }

    /// PEM keys pasted into one-line environment variables often carry literal `\n`.
    static func normalizedPEM(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.contains("\n") ? trimmed : trimmed.replacingOccurrences(of: "\\n", with: "\n")
    }
}

// MARK: - APNs provider token

/// The APNs provider token (ES256 JWT `{alg, kid}` / `{iss: team, iat}`), signed once and reused
/// for 50 minutes (Apple wants it renewed within the hour and not more than every 20 minutes).
final class APNsTokenCache: Sendable {
    static let lifetime: TimeInterval = 50 * 60

    private struct Entry {
        var fingerprint: [UInt8]
        var token: String
        var issuedAt: Date
    }

    private let entry = Mutex<Entry?>(nil)

    func token(keyID: String, teamID: String, privateKeyPEM: String, now: Date) throws(ProviderFailure) -> String {
        let fingerprint = Array(SHA256.hash(data: Array("\(keyID)\n\(teamID)\n\(privateKeyPEM)".utf8)))
        if let cached = entry.withLock({ $0 }), cached.fingerprint == fingerprint,
            now.timeIntervalSince(cached.issuedAt) < Self.lifetime, now >= cached.issuedAt
        {
            return cached.token
        }
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: JWT.normalizedPEM(privateKeyPEM))
        } catch {
            throw .permanent("apns_jwt: private_key is not a PEM P-256 (.p8) key")
        }
        let issuedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let token: String
        do {
            token = try JWT.es256(
                header: ["alg": "ES256", "kid": .string(keyID)],
                claims: ["iss": .string(teamID), "iat": .integer(Int64(issuedAt.timeIntervalSince1970))],
                key: key)
        } catch {
            throw .permanent("apns_jwt: signing failed: \(error)")
        }
        entry.withLock { $0 = Entry(fingerprint: fingerprint, token: token, issuedAt: issuedAt) }
        return token
    }
}

// MARK: - Google service account

/// The fields of a Google service-account key file Herald uses.
public struct GoogleServiceAccount: Sendable, Hashable {
    public var clientEmail: String
    public var privateKeyPEM: String
    public var privateKeyID: String?
    public var tokenURI: String

    public static let defaultTokenURI = "https://oauth2.googleapis.com/token"

    public init(clientEmail: String, privateKeyPEM: String, privateKeyID: String? = nil, tokenURI: String = Self.defaultTokenURI) {
        self.clientEmail = clientEmail
        self.privateKeyPEM = privateKeyPEM
        self.privateKeyID = privateKeyID
        self.tokenURI = tokenURI
    }

    /// Parses the JSON key file (`client_email`, `private_key`, optional `private_key_id`, `token_uri`).
    public init(json: String) throws(ProviderFailure) {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)), value.objectValue != nil else {
            throw .permanent("google_service_account: credentials are not a JSON object")
        }
        guard let email = value["client_email"]?.stringValue, !email.isEmpty else {
            throw .permanent("google_service_account: credentials have no client_email")
        }
        guard let key = value["private_key"]?.stringValue, !key.isEmpty else {
            throw .permanent("google_service_account: credentials have no private_key")
        }
        self.init(
            clientEmail: email, privateKeyPEM: key, privateKeyID: value["private_key_id"]?.stringValue,
            tokenURI: value["token_uri"]?.stringValue ?? Self.defaultTokenURI)
    }

    /// The RS256 assertion of the JWT-bearer grant (RFC 7523): `{iss, scope, aud: token_uri, iat, exp: iat+3600}`.
    public func assertion(scope: String, now: Date) throws(ProviderFailure) -> String {
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(pemRepresentation: JWT.normalizedPEM(privateKeyPEM))
        } catch {
            throw .permanent("google_service_account: private_key is not a PEM RSA key of 2048 bits or more")
        }
        let iat = Int64(now.timeIntervalSince1970.rounded(.down))
        var header: [String: JSONValue] = ["alg": "RS256", "typ": "JWT"]
        if let privateKeyID, !privateKeyID.isEmpty { header["kid"] = .string(privateKeyID) }
        do {
            return try JWT.rs256(
                header: .object(header),
                claims: [
                    "iss": .string(clientEmail), "scope": .string(scope), "aud": .string(tokenURI), "iat": .integer(iat),
                    "exp": .integer(iat + 3600),
                ],
                key: key)
        } catch {
            throw .permanent("google_service_account: signing failed: \(error)")
        }
    }
}

/// An OAuth access token and when to stop using it.
struct AccessToken: Sendable {
    var value: String
    var refreshAt: Date
}

/// Caches one OAuth access token per provider; concurrent attempts that find it missing or stale share
/// a single refresh.
actor AccessTokenCache {
    private var cached: (fingerprint: [UInt8], token: AccessToken)?
    private var refresh: (fingerprint: [UInt8], id: Int, task: Task<AccessToken, any Error>)?
    private var nextID = 0
    /// Token requests made (for tests and metrics).
    private(set) var fetches = 0

    func token(
        fingerprint: [UInt8], now: Date, fetch: @escaping @Sendable () async throws -> AccessToken
    ) async throws -> String {
        if let cached, cached.fingerprint == fingerprint, now < cached.token.refreshAt {
            return cached.token.value
        }
        if let refresh, refresh.fingerprint == fingerprint {
            return try await refresh.task.value.value
        }
        nextID += 1
        let id = nextID
        fetches += 1
        let task = Task { try await fetch() }
        refresh = (fingerprint, id, task)
        defer { if refresh?.id == id { refresh = nil } }
        let token = try await task.value
        cached = (fingerprint, token)
        return token.value
    }

    func invalidate() {
        cached = nil
    }
}
