import HeraldCore

/// Paces one channel's attempts on one worker replica, as a pure state machine (the worker keeps it
/// behind a lock and sleeps for what it answers).
///
/// - The channel's `rate_limit` and `rate_burst` make a token bucket (GCRA): after a quiet spell up to
///   `burst` attempts start at once, then one every `1/rate`.
/// - A throttled answer (429) pauses the channel until the provider said it may be tried again and
///   halves the rate (never below `1/60` of the configured one, or one a minute), with no burst: the
///   provider's own limit was lower than ours.
/// - Each success gives back a tenth of the configured rate until it is reached again, burst included
///   (additive increase, multiplicative decrease). A channel without a rate limit gets one at the
///   first throttle (one attempt per wait the provider asked for) and loses it once it has grown past
///   100 a second.
///
/// Rates are per replica: replicas don't share their buckets. The provider's 429s are what tells every
/// replica to slow down, so N replicas converge on the provider's limit between them.
public struct ChannelShaper: Sendable, Hashable {
    public typealias Instant = ContinuousClock.Instant

    public private(set) var configured: RateLimit?
    /// Attempts a second now; nil: not limited.
    public private(set) var rate: Double?
    public private(set) var burst: Int
    /// No attempt starts before this (the provider's `Retry-After`).
    public private(set) var pausedUntil: Instant?
    /// GCRA's theoretical arrival time of the next attempt.
    private var theoreticalArrival: Instant?

    public init(_ limit: RateLimit?) {
        configured = limit
        rate = limit?.perSecond
        burst = limit?.burst ?? 1
    }

    /// nil: the attempt may start now (its turn is taken); else how long to wait before asking again.
    public mutating func admit(now: Instant) -> Duration? {
        if let pausedUntil, now < pausedUntil { return pausedUntil - now }
        guard let rate, rate > 0 else { return nil }
        let interval = Duration.seconds(1 / rate)
        let tolerance = interval * Double(max(0, burst - 1))
        let arrival = max(theoreticalArrival ?? now, now)
        let allowedAt = arrival - tolerance
        if allowedAt > now { return allowedAt - now }
        theoreticalArrival = arrival + interval
        return nil
    }

    /// The provider answered "slow down", asking to wait `retryAfter` (a second when it didn't say).
    public mutating func throttled(now: Instant, retryAfter: Duration?) {
        let wait = max(.milliseconds(100), min(retryAfter ?? .seconds(1), .seconds(3600)))
        let until = now + wait
        pausedUntil = max(pausedUntil ?? until, until)
        let floor = (configured?.perSecond).map { max($0 / 60, 1.0 / 60) } ?? 1.0 / 60
        if let current = rate {
            rate = max(floor, current / 2)
        } else {
            rate = max(floor, 1 / wait.timeInterval)
        }
        burst = 1
        // No credit saved up while paused: the next attempts come one interval apart.
        theoreticalArrival = until
    }

    /// An attempt went through: the rate grows back towards the configured one.
    public mutating func succeeded() {
        guard let current = rate else { return }
        if let configured {
            let target = configured.perSecond
            guard current < target else { return }
            rate = min(target, current + target / 10)
            if rate == target { burst = configured.burst }
        } else {
            let grown = current * 1.1 + 0.01
            rate = grown > 100 ? nil : grown
        }
    }

    /// The same shaper for a reloaded channel: kept when its limit is unchanged, else started afresh.
    public func reconfigured(_ limit: RateLimit?) -> ChannelShaper {
        limit == configured ? self : ChannelShaper(limit)
    }
}
