import HeraldCore

/// The circuit breaker of one provider of one channel on one worker replica, as a pure state machine:
/// the worker asks `decide` before calling the provider and tells `record` what came of it; both
/// take the time, so tests drive it with any clock.
///
/// - **Closed**: every call goes through. Outcomes are counted in a sliding window of `buckets`
///   time buckets of `window / buckets` each; when at least `minRequests` outcomes are in the window
///   and the share of failures is at least `failureRate`, the circuit opens.
/// - **Open** for `openFor`: calls are rejected (the worker tries the next provider) without
///   touching the provider.
/// - **Half-open** after that: up to `probes` calls go through as probes, the rest are rejected.
///   `probes` successful probes close the circuit (with an empty window); a failed probe reopens it
///   for twice as long as the last time, up to 8 × `openFor`, so a provider that stays down is
///   probed less and less often.
///
/// What counts: transient failures and ambiguous outcomes (timeouts) are failures of the provider.
/// A permanent failure is the message's fault (a 400 for a bad number) — the provider answered, so
/// it counts as healthy. A throttle (429) is the channel's pace, which `ChannelShaper` handles; it
/// is not counted at all.
///
/// The state is per replica: each worker judges a provider from its own outcomes (see docs/providers.md).
public struct ProviderBreaker: Sendable, Hashable {
    public typealias Instant = ContinuousClock.Instant

    public enum State: String, Sendable, Hashable {
        case closed, halfOpen = "half_open", open

        /// The value of `herald_provider_circuit_state`.
        public var gaugeValue: Int {
            switch self {
            case .closed: 0
            case .halfOpen: 1
            case .open: 2
            }
        }
    }

    /// What the worker does with the next call to the provider.
    public enum Decision: Sendable, Hashable {
        /// Call it (closed).
        case allow
        /// Call it as a probe (half-open); its outcome decides whether the circuit closes.
        case probe
        /// Don't call it; it may be tried again at `until` (the earliest half-open time, or when the
        /// probes in flight should have answered).
        case reject(until: Instant)
    }

    /// What the breaker makes of an attempt's outcome.
    public enum Verdict: Sendable, Hashable {
        case success, failure
        /// Not evidence either way (throttled).
        case neutral

        public init(_ outcome: AttemptOutcome) {
            switch outcome {
            case .success, .permanentFailure: self = .success
            case .transientFailure, .ambiguous: self = .failure
            case .throttled: self = .neutral
            }
        }
    }

    /// A change of state, for the log line, the metrics and the `provider_circuits` row.
    public struct Transition: Sendable, Hashable {
        public var from: State
        public var to: State
        /// When an open circuit lets probes through; nil unless `to` is open.
        public var reopensAt: Instant?
        /// Why, in a few words ("12 of 20 outcomes failed in 30 s").
        public var reason: String

        public init(from: State, to: State, reopensAt: Instant?, reason: String) {
            self.from = from
            self.to = to
            self.reopensAt = reopensAt
            self.reason = reason
        }
    }

    public let settings: BreakerSettings
    public private(set) var state: State = .closed
    /// Closed: failures and outcomes per bucket, by bucket number (`now / bucketLength`).
    private var buckets: [Int64: Counts] = [:]
    private struct Counts: Sendable, Hashable {
        var outcomes = 0
        var failures = 0
    }
    /// Open: until when.
    public private(set) var openUntil: Instant?
    /// Open: how long this opening lasts (doubled by each failed probe).
    private var openedFor: Duration = .zero
    /// Half-open: probes let through and not answered yet, and probes that succeeded.
    private var probesInFlight = 0
    private var probeSuccesses = 0
    /// Where bucket numbers count from (any fixed instant: only differences matter).
    private let origin: Instant

    public init(settings: BreakerSettings, now: Instant) {
        self.settings = settings
        origin = now
    }

    /// Whether the next call may go to the provider. Moves an open circuit whose time is up to
    /// half-open (the transition is returned so that it is published like any other).
    public mutating func decide(now: Instant) -> (Decision, Transition?) {
        switch state {
        case .closed:
            return (.allow, nil)
        case .open:
            let until = openUntil ?? now
            guard now >= until else { return (.reject(until: until), nil) }
            state = .halfOpen
            openUntil = nil
            probesInFlight = 1
            probeSuccesses = 0
            return (.probe, Transition(from: .open, to: .halfOpen, reopensAt: nil, reason: "open for \(openedFor): probing"))
        case .halfOpen:
            guard probesInFlight + probeSuccesses < settings.probes else {
                // The probes in flight answer within the attempt's timeout; ask again shortly.
                return (.reject(until: now + min(settings.openFor, .seconds(1))), nil)
            }
            probesInFlight += 1
            return (.probe, nil)
        }
    }

    /// Records the outcome of a call `decide` let through (`probe`: it was let through as a probe).
    public mutating func record(_ verdict: Verdict, probe: Bool, now: Instant) -> Transition? {
        if probe {
            return recordProbe(verdict, now: now)
        }
        // A call allowed while closed that answers after the circuit opened says nothing new.
        guard state == .closed, verdict != .neutral else { return nil }
        let bucket = bucketNumber(now)
        var counts = buckets[bucket] ?? Counts()
        counts.outcomes += 1
        if verdict == .failure { counts.failures += 1 }
        buckets[bucket] = counts
        expireBuckets(before: bucket - Int64(settings.buckets) + 1)
        let (outcomes, failures) = window(now: now)
        guard outcomes >= settings.minRequests, Double(failures) >= settings.failureRate * Double(outcomes) else { return nil }
        return open(for: settings.openFor, now: now, from: .closed,
                    reason: "\(failures) of \(outcomes) outcomes failed within \(settings.window)")
    }

    /// Outcomes and failures in the window ending at `now`.
    public func window(now: Instant) -> (outcomes: Int, failures: Int) {
        let first = bucketNumber(now) - Int64(settings.buckets) + 1
        return buckets.filter { $0.key >= first }.values.reduce((0, 0)) { ($0.0 + $1.outcomes, $0.1 + $1.failures) }
    }

    private mutating func recordProbe(_ verdict: Verdict, now: Instant) -> Transition? {
        guard state == .halfOpen else { return nil }
        probesInFlight = max(0, probesInFlight - 1)
        switch verdict {
        case .neutral:
            return nil
        case .failure:
            let next = min(openedFor * 2, settings.openFor * 8)
            return open(for: next, now: now, from: .halfOpen, reason: "a probe failed")
        case .success:
            probeSuccesses += 1
            guard probeSuccesses >= settings.probes else { return nil }
            state = .closed
            buckets = [:]
            openedFor = .zero
            probesInFlight = 0
            probeSuccesses = 0
            return Transition(from: .halfOpen, to: .closed, reopensAt: nil, reason: "\(settings.probes) probe(s) succeeded")
        }
    }

    private mutating func open(for duration: Duration, now: Instant, from: State, reason: String) -> Transition {
        state = .open
        openedFor = duration
        openUntil = now + duration
        buckets = [:]
        probesInFlight = 0
        probeSuccesses = 0
        return Transition(from: from, to: .open, reopensAt: openUntil, reason: reason + "; open for \(duration)")
    }

    private var bucketLength: Duration { settings.window / settings.buckets }

    private func bucketNumber(_ now: Instant) -> Int64 {
        let elapsed = now - origin
        let length = bucketLength
        // Floor division, so instants before the origin (a test's clock) land in their own buckets.
        let ratio = elapsed / length
        return Int64(ratio.rounded(.down))
    }

    private mutating func expireBuckets(before first: Int64) {
        buckets = buckets.filter { $0.key >= first }
    }
}
