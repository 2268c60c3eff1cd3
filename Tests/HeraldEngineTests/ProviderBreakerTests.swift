import Foundation
import HeraldCore
import HeraldEngine
import Testing

/// The provider circuit breaker on its own, with a hand-moved clock.
struct ProviderBreakerTests {
    static let start = ContinuousClock.now
    /// 50 % over 10 s (ten 1-second buckets), at least 4 outcomes, open for 5 s, one probe.
    static let settings = BreakerSettings(failureRate: 0.5, window: .seconds(10), minRequests: 4, openFor: .seconds(5), probes: 1)

    /// Lets a call through and records `verdict`; returns the transition it caused.
    @discardableResult
    static func call(_ breaker: inout ProviderBreaker, _ verdict: ProviderBreaker.Verdict, at now: ContinuousClock.Instant) -> ProviderBreaker.Transition? {
        let (decision, _) = breaker.decide(now: now)
        switch decision {
        case .allow: return breaker.record(verdict, probe: false, now: now)
        case .probe: return breaker.record(verdict, probe: true, now: now)
        case .reject: Issue.record("the call was rejected"); return nil
        }
    }

    static func opened(at now: ContinuousClock.Instant = start) -> ProviderBreaker {
        var breaker = ProviderBreaker(settings: settings, now: start)
        for _ in 0..<4 { Self.call(&breaker, .failure, at: now) }
        #expect(breaker.state == .open)
        return breaker
    }

    @Test func opensWhenTheFailureRateReachesTheThreshold() {
        var breaker = ProviderBreaker(settings: Self.settings, now: Self.start)
        Self.call(&breaker, .success, at: Self.start)
        Self.call(&breaker, .success, at: Self.start + .seconds(1))
        Self.call(&breaker, .failure, at: Self.start + .seconds(2))
        #expect(breaker.state == .closed)
        // 2 of 4 = 50 %: at the threshold, with the minimum of outcomes.
        let transition = Self.call(&breaker, .failure, at: Self.start + .seconds(3))
        #expect(transition?.from == .closed)
        #expect(transition?.to == .open)
        #expect(transition?.reopensAt == Self.start + .seconds(8))
        #expect(breaker.decide(now: Self.start + .seconds(4)).0 == .reject(until: Self.start + .seconds(8)))
    }

    @Test func staysClosedBelowTheThreshold() {
        var breaker = ProviderBreaker(settings: Self.settings, now: Self.start)
        for index in 0..<10 { Self.call(&breaker, index < 6 ? .success : .failure, at: Self.start) }
        #expect(breaker.state == .closed)
    }

    @Test func doesNotOpenBelowMinRequests() {
        var breaker = ProviderBreaker(settings: Self.settings, now: Self.start)
        for _ in 0..<3 { Self.call(&breaker, .failure, at: Self.start) }
        #expect(breaker.state == .closed)
        #expect(breaker.window(now: Self.start) == (3, 3))
        #expect(breaker.decide(now: Self.start).0 == .allow)
    }

    @Test func oldBucketsExpire() {
        var breaker = ProviderBreaker(settings: Self.settings, now: Self.start)
        for _ in 0..<3 { Self.call(&breaker, .failure, at: Self.start) }
        // 10 s later the first bucket has left the window: this failure is alone in it.
        Self.call(&breaker, .failure, at: Self.start + .seconds(10))
        #expect(breaker.state == .closed)
        #expect(breaker.window(now: Self.start + .seconds(10)) == (1, 1))
        // Within the window they still count together.
        var other = ProviderBreaker(settings: Self.settings, now: Self.start)
        for _ in 0..<3 { Self.call(&other, .failure, at: Self.start) }
        Self.call(&other, .failure, at: Self.start + .milliseconds(9_900))
        #expect(other.state == .open)
    }

    @Test func theWindowIsBucketedNotSliding() {
        // Failures in bucket 0 expire together when bucket 10 starts, even if one came late in bucket 0.
        var breaker = ProviderBreaker(settings: Self.settings, now: Self.start)
        Self.call(&breaker, .failure, at: Self.start)
        Self.call(&breaker, .failure, at: Self.start + .milliseconds(999))
        #expect(breaker.window(now: Self.start + .milliseconds(9_999)) == (2, 2))
        #expect(breaker.window(now: Self.start + .seconds(10)) == (0, 0))
    }

    @Test func whatCountsAsAFailure() {
        #expect(ProviderBreaker.Verdict(.transientFailure) == .failure)
        #expect(ProviderBreaker.Verdict(.ambiguous) == .failure)
        // The provider answered: the message was at fault (a 400 for a bad number).
        #expect(ProviderBreaker.Verdict(.permanentFailure) == .success)
        // The channel's pace, which the shaper handles.
        #expect(ProviderBreaker.Verdict(.throttled) == .neutral)
        var breaker = ProviderBreaker(settings: Self.settings, now: Self.start)
        for _ in 0..<10 { Self.call(&breaker, .neutral, at: Self.start) }
        #expect(breaker.window(now: Self.start) == (0, 0))
    }

    @Test func halfOpensAfterOpenForAndLimitsProbes() {
        var breaker = ProviderBreaker(settings: BreakerSettings(
            failureRate: 0.5, window: .seconds(10), minRequests: 4, openFor: .seconds(5), probes: 2), now: Self.start)
        for _ in 0..<4 { Self.call(&breaker, .failure, at: Self.start) }
        #expect(breaker.decide(now: Self.start + .milliseconds(4_999)).0 == .reject(until: Self.start + .seconds(5)))
        let now = Self.start + .seconds(5)
        let (first, transition) = breaker.decide(now: now)
        #expect(first == .probe)
        #expect(transition?.to == .halfOpen)
        #expect(breaker.decide(now: now).0 == .probe)
        // Two probes in flight: the third call waits for them.
        guard case .reject(let until) = breaker.decide(now: now).0 else {
            Issue.record("a third probe was let through")
            return
        }
        #expect(until > now)
        // One probe succeeded: half-open still (two must), and its slot is not given again.
        #expect(breaker.record(.success, probe: true, now: now) == nil)
        #expect(breaker.state == .halfOpen)
        if case .probe = breaker.decide(now: now).0 { Issue.record("a third probe was let through") }
        let closed = breaker.record(.success, probe: true, now: now)
        #expect(closed?.from == .halfOpen)
        #expect(closed?.to == .closed)
    }

    @Test func aProbeSuccessCloses() {
        var breaker = Self.opened()
        let now = Self.start + .seconds(5)
        #expect(breaker.decide(now: now).0 == .probe)
        let transition = breaker.record(.success, probe: true, now: now)
        #expect(transition?.to == .closed)
        #expect(breaker.state == .closed)
        // Closed with an empty window: the failures before the opening don't count again.
        #expect(breaker.window(now: now) == (0, 0))
        #expect(breaker.decide(now: now).0 == .allow)
    }

    @Test func aProbeFailureReopensWithBackOff() {
        var breaker = Self.opened()
        var now = Self.start + .seconds(5)
        #expect(breaker.decide(now: now).0 == .probe)
        let reopened = breaker.record(.failure, probe: true, now: now)
        #expect(reopened?.from == .halfOpen)
        #expect(reopened?.to == .open)
        // Twice as long as the first opening.
        #expect(reopened?.reopensAt == now + .seconds(10))
        #expect(breaker.decide(now: now + .seconds(9)).0 == .reject(until: now + .seconds(10)))
        // Doubling stops at 8 × open_for.
        var waits: [Duration] = []
        for _ in 0..<4 {
            now = breaker.openUntil ?? now
            #expect(breaker.decide(now: now).0 == .probe)
            let transition = breaker.record(.failure, probe: true, now: now)
            waits.append((transition?.reopensAt ?? now) - now)
        }
        #expect(waits == [.seconds(20), .seconds(40), .seconds(40), .seconds(40)])
        // After closing, the next opening is open_for again.
        now = breaker.openUntil ?? now
        #expect(breaker.decide(now: now).0 == .probe)
        breaker.record(.success, probe: true, now: now)
        for _ in 0..<4 { Self.call(&breaker, .failure, at: now) }
        #expect(breaker.openUntil == now + .seconds(5))
    }

    @Test func aThrottledProbeFreesItsSlot() {
        var breaker = Self.opened()
        let now = Self.start + .seconds(5)
        #expect(breaker.decide(now: now).0 == .probe)
        #expect(breaker.record(.neutral, probe: true, now: now) == nil)
        #expect(breaker.state == .halfOpen)
        #expect(breaker.decide(now: now).0 == .probe)
    }

    @Test func lateOutcomesOfCallsMadeWhileClosedChangeNothing() {
        var breaker = Self.opened()
        #expect(breaker.record(.success, probe: false, now: Self.start + .seconds(1)) == nil)
        #expect(breaker.record(.failure, probe: false, now: Self.start + .seconds(1)) == nil)
        #expect(breaker.state == .open)
        #expect(breaker.openUntil == Self.start + .seconds(5))
    }
}
