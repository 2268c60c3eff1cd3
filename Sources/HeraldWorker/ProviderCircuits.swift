import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The breakers of this replica, one per channel and provider, each behind the same lock (a decision
/// is a few comparisons). Transitions are reported outside the lock: a log line, the metrics, and a
/// row for `provider_circuits` handed to the publisher without waiting for it.
final class ProviderCircuits: Sendable {
    struct Key: Hashable, Sendable {
        var channel: String
        var provider: String
    }

    private let breakers = Mutex<[Key: ProviderBreaker]>([:])
    let replica: String
    let publisher: CircuitPublisher?
    let logger: Logger

    init(replica: String, publisher: CircuitPublisher?, logger: Logger) {
        self.replica = replica
        self.publisher = publisher
        self.logger = logger
    }

    /// Whether `provider` of `channel` may be called now. A channel with `breaker: off` always allows.
    func decide(channel: ChannelDefinition, provider: String, now: ContinuousClock.Instant = .now) -> ProviderBreaker.Decision {
        guard let settings = channel.breaker else { return .allow }
        let key = Key(channel: channel.name, provider: provider)
        let (decision, transitions) = breakers.withLock { all -> (ProviderBreaker.Decision, [ProviderBreaker.Transition]) in
            var transitions: [ProviderBreaker.Transition] = []
            var breaker: ProviderBreaker
            if let existing = all[key], existing.settings == settings {
                breaker = existing
            } else {
                // New settings (a reload): a fresh, closed breaker; an open one is said to have closed.
                if let existing = all[key], existing.state != .closed {
                    transitions.append(.init(from: existing.state, to: .closed, reopensAt: nil, reason: "the breaker's settings changed"))
                }
                breaker = ProviderBreaker(settings: settings, now: now)
            }
            let (decision, transition) = breaker.decide(now: now)
            all[key] = breaker
            if let transition { transitions.append(transition) }
            return (decision, transitions)
        }
        for transition in transitions { report(transition, key: key, now: now) }
        return decision
    }

    /// Records what a call `decide` let through came to.
    func record(channel: ChannelDefinition, provider: String, outcome: AttemptOutcome, probe: Bool, now: ContinuousClock.Instant = .now) {
        guard channel.breaker != nil else { return }
        let key = Key(channel: channel.name, provider: provider)
        let transition = breakers.withLock { all -> ProviderBreaker.Transition? in
            guard var breaker = all[key] else { return nil }
            let transition = breaker.record(ProviderBreaker.Verdict(outcome), probe: probe, now: now)
            all[key] = breaker
            return transition
        }
        if let transition { report(transition, key: key, now: now) }
    }

    func state(channel: String, provider: String) -> ProviderBreaker.State {
        breakers.withLock { $0[Key(channel: channel, provider: provider)]?.state ?? .closed }
    }

    private func report(_ transition: ProviderBreaker.Transition, key: Key, now: ContinuousClock.Instant) {
        let dimensions = [("channel", key.channel), ("provider", key.provider)]
        Gauge(label: "herald_provider_circuit_state", dimensions: dimensions).record(transition.to.gaugeValue)
        Counter(label: "herald_provider_circuit_transitions_total", dimensions: dimensions + [("to", transition.to.rawValue)]).increment()
        let wallNow = Date()
        let reopensAt = transition.reopensAt.map { wallNow.addingTimeInterval(($0 - now).timeInterval) }
        var metadata: Logger.Metadata = [
            "event.action": "provider-circuit", "herald.channel": "\(key.channel)", "herald.provider": "\(key.provider)",
            "circuit.from": "\(transition.from.rawValue)", "circuit.to": "\(transition.to.rawValue)", "reason": "\(transition.reason)",
        ]
        if let reopensAt { metadata["circuit.reopens_at"] = "\(Timestamp.string(reopensAt))" }
        // An opening is worth an operator's eye; probing and closing are the way back.
        logger.log(level: transition.to == .open ? .warning : .info,
                   "provider circuit \(transition.from.rawValue) -> \(transition.to.rawValue)", metadata: metadata)
        publisher?.publish(CircuitRow(
            channel: key.channel, provider: key.provider, replica: replica, state: transition.to.rawValue,
            changedAt: wallNow, reopensAt: reopensAt))
    }
}

/// Writes this replica's breaker transitions to `provider_circuits` in the background (the delivery
/// path never waits for PostgreSQL for this), touches its rows while it runs so the gateway counts
/// it as seen, and removes them when it stops.
final class CircuitPublisher: Service, Sendable {
    let store: CircuitStore
    let replica: String
    let touchInterval: Duration
    let logger: Logger
    private let rows: AsyncStream<CircuitRow>
    private let continuation: AsyncStream<CircuitRow>.Continuation

    init(store: CircuitStore, replica: String, touchInterval: Duration = .seconds(30), logger: Logger) {
        self.store = store
        self.replica = replica
        self.touchInterval = touchInterval
        self.logger = logger
        // Bounded: transitions are rare, and under a flood the latest per provider is what matters.
        (rows, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1024))
    }

    func publish(_ row: CircuitRow) { continuation.yield(row) }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isShuttingDownGracefully && !Task.isCancelled {
                    try? await Task.sleep(for: self.touchInterval)
                    do { try await self.store.touch(replica: self.replica) } catch {
                        self.logger.debug("could not touch provider_circuits", metadata: ["error": "\(StoreFailure.describe(error))"])
                    }
                }
            }
            for await row in rows.cancelOnGracefulShutdown() {
                await write(row)
            }
            group.cancelAll()
        }
        try? await store.remove(replica: replica)
    }

    private func write(_ row: CircuitRow) async {
        // A few tries: the row is only for visibility, and the next transition writes the state again.
        for attempt in 1...3 {
            do {
                try await store.record(row)
                return
            } catch {
                if attempt == 3 {
                    logger.warning("could not write the provider circuit state", metadata: [
                        "herald.channel": "\(row.channel)", "herald.provider": "\(row.provider)",
                        "error": "\(StoreFailure.describe(error))",
                    ])
                }
                try? await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
    }
}
