/// Capped exponential backoff between connection attempts. Pure value type.
///
/// Delays: `initial`, `initial * multiplier`, ... capped at `maximum`, each scaled by a random
/// factor in `1 - jitter ... 1` so that many clients don't reconnect in lockstep.
/// Defaults: initial 100 ms, multiplier 2, maximum 10 s, jitter 0.2.
struct ReconnectBackoff: Sendable {
    var initial: Duration
    var maximum: Duration
    var multiplier: Double
    var jitter: Double
    private(set) var attempt = 0

    init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10), multiplier: Double = 2, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    mutating func reset() { attempt = 0 }

    mutating func nextDelay() -> Duration {
        var rng = SystemRandomNumberGenerator()
        return nextDelay(using: &rng)
    }

    mutating func nextDelay<R: RandomNumberGenerator>(using rng: inout R) -> Duration {
        let initialSeconds = Self.seconds(initial)
        let maxSeconds = Self.seconds(maximum)
        var base = initialSeconds
        for _ in 0..<min(attempt, 64) {
            base *= multiplier
            if base >= maxSeconds { break }
        }
        base = min(base, maxSeconds)
        attempt += 1
        let factor = jitter > 0 ? Double.random(in: (1 - jitter)...1, using: &rng) : 1
        return .nanoseconds(Int64(base * factor * 1_000_000_000))
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
