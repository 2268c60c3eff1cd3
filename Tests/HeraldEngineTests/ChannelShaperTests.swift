import Foundation
import HeraldCore
import HeraldEngine
import Testing

/// The channel's pace: token bucket, throttle pauses and halving, additive recovery.
struct ChannelShaperTests {
    static let start = ContinuousClock.now

    /// Starts admitted over `duration` when every caller asks as soon as it is told to.
    static func starts(_ shaper: inout ChannelShaper, over duration: Duration, from: ContinuousClock.Instant = start) -> [Duration] {
        var now = from
        var starts: [Duration] = []
        while now < from + duration {
            if let wait = shaper.admit(now: now) { now += wait } else { starts.append(now - from) }
        }
        return starts
    }

    @Test func synapsesDefaultIsTenAtOnceThenOneEveryFiveSeconds() {
        var shaper = ChannelShaper(RateLimit(count: 12, per: .seconds(60), burst: 10))
        let starts = Self.starts(&shaper, over: .seconds(21))
        #expect(starts.prefix(10).allSatisfy { $0 == .zero })
        #expect(Array(starts.dropFirst(10)).map { Int($0.timeInterval.rounded()) } == [5, 10, 15, 20])
    }

    @Test func withoutBurstAttemptsAreEvenlySpaced() {
        var shaper = ChannelShaper(RateLimit(count: 10, per: .seconds(1)))
        let starts = Self.starts(&shaper, over: .milliseconds(999))
        #expect(starts.count == 10)
        #expect(starts.map { Int(($0.timeInterval * 1000).rounded()) } == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900])
    }

    @Test func noLimitNeverWaits() {
        var shaper = ChannelShaper(nil)
        for _ in 0..<1000 { #expect(shaper.admit(now: Self.start) == nil) }
    }

    @Test func aThrottlePausesHalvesTheRateAndDropsTheBurst() {
        var shaper = ChannelShaper(RateLimit(count: 10, per: .seconds(1), burst: 10))
        shaper.throttled(now: Self.start, retryAfter: .seconds(2))
        #expect(shaper.admit(now: Self.start + .seconds(1)) == .seconds(1))
        #expect(shaper.rate == 5)
        #expect(shaper.burst == 1)
        let starts = Self.starts(&shaper, over: .milliseconds(2999))
        #expect(starts.map { Int(($0.timeInterval * 1000).rounded()) } == [2000, 2200, 2400, 2600, 2800])
    }

    @Test func repeatedThrottlesConvergeBelowTheProvidersRateButNotToNothing() {
        var shaper = ChannelShaper(RateLimit(count: 10, per: .seconds(1)))
        for _ in 0..<20 { shaper.throttled(now: Self.start, retryAfter: .seconds(1)) }
        #expect(shaper.rate == 10.0 / 60, "floored at a sixtieth of the configured rate")
    }

    @Test func successesGiveTheRateBackStepByStep() {
        var shaper = ChannelShaper(RateLimit(count: 10, per: .seconds(1), burst: 4))
        shaper.throttled(now: Self.start, retryAfter: nil)
        #expect(shaper.rate == 5)
        for expected in [6.0, 7, 8, 9, 10, 10] {
            shaper.succeeded()
            #expect(abs((shaper.rate ?? 0) - expected) < 1e-9)
        }
        #expect(shaper.burst == 4, "the configured burst comes back with the configured rate")
    }

    @Test func anUnlimitedChannelGetsALimitAtItsFirstThrottleAndLosesItLater() {
        var shaper = ChannelShaper(nil)
        shaper.throttled(now: Self.start, retryAfter: .seconds(4))
        #expect(shaper.rate == 0.25)
        #expect(shaper.admit(now: Self.start + .seconds(3)) == .seconds(1))
        for _ in 0..<200 { shaper.succeeded() }
        #expect(shaper.rate == nil)
    }

    @Test func aReloadWithTheSameLimitKeepsTheState() {
        var shaper = ChannelShaper(RateLimit(count: 10, per: .seconds(1)))
        shaper.throttled(now: Self.start, retryAfter: .seconds(1))
        #expect(shaper.reconfigured(RateLimit(count: 10, per: .seconds(1))).rate == 5)
        #expect(shaper.reconfigured(RateLimit(count: 20, per: .seconds(1))).rate == 20)
    }
}
