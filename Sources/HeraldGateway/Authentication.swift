import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Who is calling: the API key a request authenticated with.
public struct Principal: Sendable, Hashable {
    public var keyID: UUID
    public var keyPrefix: String
    public var tenant: String
    public var scopes: Set<APIScope>
    public var rateLimit: Int?

    public init(_ key: APIKey) {
        keyID = key.id
        keyPrefix = key.prefix
        tenant = key.tenant
        scopes = key.scopes
        rateLimit = key.rateLimit
    }
}

/// The gateway's request context: Hummingbird's core plus the authenticated principal.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var principal: Principal?
    /// This request's trace (set by `ObservabilityMiddleware`), stored with the deliveries it creates.
    public var trace: TraceContext?

    public init(source: Source) {
        coreContext = .init(source: source)
        principal = nil
        trace = nil
    }

    /// The caller, if its key grants `scope`; else 403 (401 when unauthenticated, which the
    /// middleware already answered for every `/v1` route).
    func require(_ scope: APIScope) throws -> Principal {
        guard let principal else { throw ProblemDetails.unauthenticated("this route needs an API key") }
        guard principal.scopes.contains(.admin) || principal.scopes.contains(scope) else {
            throw ProblemDetails(
                type: ProblemDetails.base + "forbidden", title: "Forbidden", status: .forbidden,
                detail: "the API key \(principal.keyPrefix) lacks the '\(scope.rawValue)' scope this route needs")
        }
        return principal
    }
}

/// Where keys are looked up: PostgreSQL (`APIKeyStore`), or anything else in tests.
public protocol KeyLookup: Sendable {
    func authenticate(token: String) async throws -> APIKey?
}

extension APIKeyStore: KeyLookup {}

/// Finds the key a token names. The PostgreSQL store, behind a short cache so that a request costs
/// no query while revocation still takes effect within `ttl`.
///
/// When the database fails, a key seen in the last `staleLimit` stays good, and a key whose refresh
/// failed is not tried again for `ttl`: an outage costs each key one lookup deadline per `ttl`, not
/// every request one (the request's own write has a deadline of its own).
public final class KeyAuthenticator: Sendable {
    private struct Entry {
        var key: APIKey?
        var hash: [UInt8]
        var fetched: ContinuousClock.Instant
        /// When the last refresh of this entry failed (the database was down or slow).
        var refreshFailed: ContinuousClock.Instant?
    }

    private let lookup: any KeyLookup
    private let ttl: Duration
    private let staleLimit: Duration
    private let cache = Mutex<[String: Entry]>([:])

    public init(store: any KeyLookup, ttl: Duration = .seconds(5), staleLimit: Duration = .seconds(600)) {
        self.lookup = store
        self.ttl = ttl
        self.staleLimit = staleLimit
    }

    public func authenticate(token: String, now: ContinuousClock.Instant = .now) async throws -> APIKey? {
        let hash = APIKeyStore.hash(token: token)
        // Keyed by the token's public prefix; the full hash must match too, so a forged token with a
        // known prefix never hits a cached success.
        let slot = String(token.prefix(16))
        let cached = cache.withLock { $0[slot] }.flatMap { $0.hash == hash ? $0 : nil }
        if let cached {
            if now - cached.fetched < ttl { return cached.key }
            if let failed = cached.refreshFailed, now - failed < ttl, cached.key != nil, now - cached.fetched < staleLimit {
                return cached.key
            }
        }
        let key: APIKey?
        do {
            key = try await lookup.authenticate(token: token)
        } catch {
            guard let cached, cached.key != nil, now - cached.fetched < staleLimit else { throw error }
            cache.withLock { $0[slot]?.refreshFailed = now }
            return cached.key
        }
        cache.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[slot] = Entry(key: key, hash: hash, fetched: now)
        }
        return key
    }
}

/// A token bucket per key: `rate` requests a second, bursts up to one second's worth.
final class KeyRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let buckets = Mutex<[UUID: Bucket]>([:])

    /// nil when allowed; else how long to wait before the next request can pass.
    func admit(_ key: UUID, rate: Int, now: ContinuousClock.Instant = .now) -> Duration? {
        let capacity = Double(max(1, rate))
        return buckets.withLock { buckets -> Duration? in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = (now - bucket.updated).timeInterval
            bucket.tokens = min(capacity, bucket.tokens + elapsed * capacity)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .milliseconds(Int64(((1 - bucket.tokens) / capacity * 1000).rounded(.up)))
        }
    }
}

/// Every `/v1` route needs `Authorization: Bearer <key>`: 401 problem+json without a valid, unrevoked
/// key, 429 with `Retry-After` over the key's rate. `/healthz`, `/readyz`, `/metrics` and the API
/// description stay open, and `/v1/receipts/…` checks the provider's own proof instead.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let authenticator: KeyAuthenticator
    let limiter = KeyRateLimiter()
    let defaultRateLimit: Int
    let deadline: Duration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v1/") || request.uri.path == "/v1" else { return try await next(request, context) }
        // Providers' status callbacks carry their own proof (a signature or a per-delivery token), checked by the route.
        if request.uri.path.hasPrefix(ReceiptsAPI.pathPrefix) { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            throw ProblemDetails.unauthenticated("send an API key: Authorization: Bearer hk_…")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw ProblemDetails.unauthenticated("the Authorization header must be 'Bearer <API key>'")
        }
        let token = String(parts[1].trimmingSpacesAndTabs)
        let authenticator = self.authenticator
        guard let key = try await withDeadline(deadline, "checking the API key", { try await authenticator.authenticate(token: token) })
        else {
            throw ProblemDetails.unauthenticated("the API key is not valid")
        }
        guard key.revokedAt == nil else { throw ProblemDetails.unauthenticated("the API key \(key.prefix) was revoked") }
        if let wait = limiter.admit(key.id, rate: key.rateLimit ?? defaultRateLimit) {
            throw ProblemDetails(
                type: ProblemDetails.base + "rate-limited", title: "Too many requests", status: .tooManyRequests,
                detail: "the API key \(key.prefix) may make \(key.rateLimit ?? defaultRateLimit) requests a second",
                retryAfter: max(1, Int(wait.timeInterval.rounded(.up))))
        }
        var context = context
        context.principal = Principal(key)
        return try await next(request, context)
    }
}
