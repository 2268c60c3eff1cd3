import Foundation
import HeraldStore
import Synchronization
import Testing

@testable import HeraldGateway

/// A key store that answers or fails as told, counting lookups.
final class ScriptedKeys: KeyLookup {
    struct Down: Error {}
    let key: APIKey
    let down = Mutex(false)
    let revoked = Mutex(false)
    let lookups = Mutex(0)

    init(key: APIKey) { self.key = key }

    func authenticate(token: String) async throws -> APIKey? {
        lookups.withLock { $0 += 1 }
        if down.withLock({ $0 }) { throw Down() }
        var answer = key
        if revoked.withLock({ $0 }) { answer.revokedAt = Date() }
        return answer
    }
}

@Suite struct KeyAuthenticatorTests {
    let token = "hk_abcdefghijkl_" + String(repeating: "x", count: 43)
    let key = APIKey(
        id: UUID(), prefix: "hk_abcdefghijkl", tenant: "t", scopes: [.send], name: "", rateLimit: nil, createdAt: Date(),
        revokedAt: nil)

    @Test func aCachedKeyCostsNoLookupWithinTheTTL() async throws {
        let keys = ScriptedKeys(key: key)
        let authenticator = KeyAuthenticator(store: keys, ttl: .seconds(5))
        let start = ContinuousClock.now
        _ = try await authenticator.authenticate(token: token, now: start)
        _ = try await authenticator.authenticate(token: token, now: start + .seconds(4))
        #expect(keys.lookups.withLock { $0 } == 1)
        // After the TTL it is read again: a revocation takes effect.
        keys.revoked.withLock { $0 = true }
        let again = try await authenticator.authenticate(token: token, now: start + .seconds(6))
        #expect(again?.revokedAt != nil)
        #expect(keys.lookups.withLock { $0 } == 2)
    }

    @Test func duringAnOutageAKeyIsTriedOncePerTTLAndStaysGood() async throws {
        let keys = ScriptedKeys(key: key)
        let authenticator = KeyAuthenticator(store: keys, ttl: .seconds(5), staleLimit: .seconds(600))
        let start = ContinuousClock.now
        _ = try await authenticator.authenticate(token: token, now: start)
        keys.down.withLock { $0 = true }
        // Expired: one lookup fails, the stale key answers; the next requests within the TTL don't look up.
        for second in [6, 7, 8, 10] {
            let answer = try await authenticator.authenticate(token: token, now: start + .seconds(second))
            #expect(answer?.id == key.id)
        }
        #expect(keys.lookups.withLock { $0 } == 2)
        // A TTL after the failure it is tried again.
        _ = try await authenticator.authenticate(token: token, now: start + .seconds(12))
        #expect(keys.lookups.withLock { $0 } == 3)
        // Past the stale limit the outage is the client's error too.
        await #expect(throws: ScriptedKeys.Down.self) {
            _ = try await authenticator.authenticate(token: token, now: start + .seconds(700))
        }
    }

    @Test func aForgedTokenWithAKnownPrefixNeverHitsTheCache() async throws {
        let keys = ScriptedKeys(key: key)
        let authenticator = KeyAuthenticator(store: keys)
        let start = ContinuousClock.now
        _ = try await authenticator.authenticate(token: token, now: start)
        _ = try await authenticator.authenticate(token: "hk_abcdefghijkl_" + String(repeating: "y", count: 43), now: start)
        #expect(keys.lookups.withLock { $0 } == 2)
    }
}
