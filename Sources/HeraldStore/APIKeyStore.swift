import Crypto
import Foundation
import HeraldCore
import Logging
import PostgresNIO

/// What an API key may do. `admin` includes the others.
public enum APIScope: String, Sendable, Hashable, CaseIterable, Codable {
    /// Send, batch, cancel, and replay dead letters.
    case send
    /// Read notifications, listings, audit queries, dead letters, channels and templates.
    case read
    /// Everything.
    case admin
}

/// A stored API key, without its secret.
public struct APIKey: Sendable, Hashable {
    public var id: UUID
    /// The public part that names the key in lists and logs (`hk_` + 12 characters).
    public var prefix: String
    public var tenant: String
    public var scopes: Set<APIScope>
    public var name: String
    /// Requests per second this key may make (nil: the gateway's default).
    public var rateLimit: Int?
    public var createdAt: Date
    public var revokedAt: Date?

    public init(
        id: UUID, prefix: String, tenant: String, scopes: Set<APIScope>, name: String, rateLimit: Int?, createdAt: Date,
        revokedAt: Date?
    ) {
        self.id = id
        self.prefix = prefix
        self.tenant = tenant
        self.scopes = scopes
        self.name = name
        self.rateLimit = rateLimit
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    public func allows(_ scope: APIScope) -> Bool { scopes.contains(.admin) || scopes.contains(scope) }
}

/// API keys: random tokens shown once at creation and stored only as a SHA-256 hash. A token is
/// `hk_<prefix>_<secret>`: the prefix (public, 12 characters) finds the row, the hash of the whole
/// token proves it. 32 random bytes of secret make a slow password hash unnecessary: nobody can
/// guess their way to a preimage.
public struct APIKeyStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The prefix of a well-formed token, or nil.
    public static func prefix(ofToken token: String) -> String? {
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        guard token.utf8.count <= 128, parts.count == 3, parts[0] == "hk", parts[1].count == 12, parts[2].count >= 43,
            parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) })
        else { return nil }
        return "hk_" + parts[1]
    }

    public static func hash(token: String) -> [UInt8] { Array(SHA256.hash(data: Data(token.utf8))) }

    static func randomText(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
        // Base64url with '_' spelled '-' too: the token's '_' separates its parts (hk_<prefix>_<secret>).
        return Base64URL.encode(data).replacingOccurrences(of: "_", with: "-")
    }

    /// Creates a key; returns the token (shown once, never stored) and the key.
    public func create(tenant: String, scopes: Set<APIScope>, name: String = "", rateLimit: Int? = nil) async throws
        -> (token: String, key: APIKey)
    {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        let prefix = "hk_" + String((0..<12).map { _ in alphabet.randomElement(using: &generator)! })
        let token = prefix + "_" + Self.randomText(bytes: 32).replacingOccurrences(of: "_", with: "-")
        let key = APIKey(
            id: .timeOrdered(), prefix: prefix, tenant: tenant, scopes: scopes, name: name, rateLimit: rateLimit,
            createdAt: Date(), revokedAt: nil)
        let scopeNames = scopes.map(\.rawValue).sorted()
        try await client.query(
            """
            INSERT INTO api_keys (id, prefix, hash, tenant, scopes, name, rate_limit, created_at)
            VALUES (\(key.id), \(prefix), \(ByteBuffer(bytes: Self.hash(token: token))), \(tenant), \(scopeNames)::text[],
                \(name), \(rateLimit), \(key.createdAt))
            """, logger: logger)
        return (token, key)
    }

    /// The key a token names, if the token is genuine (constant-time hash comparison); revoked keys too.
    public func authenticate(token: String) async throws -> APIKey? {
        guard let prefix = Self.prefix(ofToken: token) else { return nil }
        guard let (key, storedHash) = try await find(prefix: prefix) else { return nil }
        let presented = Self.hash(token: token)
        guard presented.count == storedHash.count else { return nil }
        var difference: UInt8 = 0
        for (a, b) in zip(presented, storedHash) { difference |= a ^ b }
        return difference == 0 ? key : nil
    }

    func find(prefix: String) async throws -> (APIKey, [UInt8])? {
        for try await row in try await client.query(
            """
            SELECT id, prefix, hash, tenant, scopes, name, rate_limit, created_at, revoked_at FROM api_keys WHERE prefix = \(prefix)
            """, logger: logger
        ).decode((UUID, String, ByteBuffer, String, [String], String, Int?, Date, Date?).self) {
            var hash = row.2
            return (Self.key(row), hash.readBytes(length: hash.readableBytes) ?? [])
        }
        return nil
    }

    static func key(_ row: (UUID, String, ByteBuffer, String, [String], String, Int?, Date, Date?)) -> APIKey {
        APIKey(
            id: row.0, prefix: row.1, tenant: row.3, scopes: Set(row.4.compactMap(APIScope.init(rawValue:))), name: row.5,
            rateLimit: row.6, createdAt: row.7, revokedAt: row.8)
    }

    public func list(tenant: String? = nil) async throws -> [APIKey] {
        var keys: [APIKey] = []
        for try await row in try await client.query(
            """
            SELECT id, prefix, hash, tenant, scopes, name, rate_limit, created_at, revoked_at FROM api_keys
            WHERE \(tenant ?? "") = '' OR tenant = \(tenant ?? "") ORDER BY created_at, id
            """, logger: logger
        ).decode((UUID, String, ByteBuffer, String, [String], String, Int?, Date, Date?).self) {
            keys.append(Self.key(row))
        }
        return keys
    }

    /// Revokes the key with this prefix; false when there is none (or it was revoked already).
    public func revoke(prefix: String) async throws -> Bool {
        var revoked = false
        for try await _ in try await client.query(
            "UPDATE api_keys SET revoked_at = now() WHERE prefix = \(prefix) AND revoked_at IS NULL RETURNING id", logger: logger
        ).decode(UUID.self) {
            revoked = true
        }
        return revoked
    }
}
