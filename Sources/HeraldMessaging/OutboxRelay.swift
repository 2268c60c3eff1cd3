import HeraldBroker
import HeraldCore
import HeraldStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// One relay round's I/O: publish up to `limit` due outbox rows and remove them; how many.
public protocol OutboxRelayRound: Sendable {
    func relayRound(limit: Int) async throws -> Int
}

/// The real round: rows from PostgreSQL, published to RabbitMQ with confirms, in one transaction.
public struct LiveOutboxRelayRound: OutboxRelayRound {
    let outbox: OutboxStore
    let publisher: BrokerPublisher

    public init(outbox: OutboxStore, publisher: BrokerPublisher) {
        self.outbox = outbox
        self.publisher = publisher
    }

    public func relayRound(limit: Int) async throws -> Int {
        try await outbox.relayBatch(limit: limit) { entries in
            try await publisher.publish(entries.map(DeliveryTopology.deliveryMessage(for:)))
            // Once confirmed: a round that fails publishes nothing, and its rows are counted when they go out.
            let lag = Timer(label: "herald_outbox_publish_lag_seconds")
            for entry in entries { lag.recordNanoseconds(Int64(entry.dueFor * 1_000_000_000)) }
        }
    }
}

extension DeliveryTopology {
    /// The message for an outbox row (the relay's and the direct publisher's).
    public static func deliveryMessage(for entry: OutboxEntry) -> OutgoingMessage {
        deliveryMessage(
            channel: entry.channel, deliveryID: entry.deliveryID.lowercasedString, attempt: entry.attempt,
            payload: Array(entry.payload.utf8), traceparent: DeliveryJob.encodedTraceparent(entry.payload))
    }
}

/// What the relay has achieved lately, for readiness and metrics.
public struct RelayProgress: Sendable, Hashable {
    /// When a round last completed (published or found nothing due).
    public var lastSuccess: ContinuousClock.Instant?
    public var consecutiveFailures: Int = 0
    public var lastError: String?
}

/// Moves due outbox rows to RabbitMQ: locks a batch, publishes it with confirms, deletes the rows, all
/// in one transaction. Woken right after each commit, and polls (another process's rows, scheduled
/// and retry rows coming due, a failed round). Several loops run at once; `SKIP LOCKED` keeps their
/// batches disjoint.
///
/// Every round has a deadline: a round stuck in a database or broker call (a connection that died
/// without closing) is abandoned and the next one starts after a back-off, so the relay can't stop
/// for good; the server-side statement and idle-transaction timeouts release the abandoned round's
/// row locks.
public final class OutboxRelay: Service, Sendable {
    public struct Configuration: Sendable {
        /// Rows per transaction. Default 500.
        public var batchSize: Int = 500
        /// Loops at once. Default 2: one publishes while the other commits.
        public var concurrency: Int = 2
        /// Longest wait between rounds when nobody rings. Default 200 ms.
        public var pollInterval: Duration = .milliseconds(200)
        /// Longest a round may take before it is abandoned. Default 10 s.
        public var roundDeadline: Duration = .seconds(10)
        /// Wait after a first failed round, doubling per failure up to `maximumBackoff`. Default 250 ms.
        public var errorBackoff: Duration = .milliseconds(250)
        /// Default 5 s.
        public var maximumBackoff: Duration = .seconds(5)
        public init() {}
    }

    private let round: any OutboxRelayRound
    private let configuration: Configuration
    private let logger: Logger
    private let doorbells: [Doorbell]
    private let state = Mutex(RelayProgress())
    private let published = Counter(label: "herald_outbox_published_total")
    private let failures = Counter(label: "herald_outbox_publish_failures_total")

    public init(round: any OutboxRelayRound, configuration: Configuration = .init(), logger: Logger) {
        self.round = round
        self.configuration = configuration
        self.logger = logger
        self.doorbells = (0..<max(1, configuration.concurrency)).map { _ in Doorbell() }
    }

    public convenience init(outbox: OutboxStore, publisher: BrokerPublisher, configuration: Configuration = .init(), logger: Logger) {
        self.init(round: LiveOutboxRelayRound(outbox: outbox, publisher: publisher), configuration: configuration, logger: logger)
    }

    public var progress: RelayProgress { state.withLock { $0 } }

    /// New rows were committed: start a round now instead of at the next poll.
    public func wake() {
        doorbells.forEach { $0.ring() }
    }

    public func run() async throws {
        await doorbells.runLoops { await self.loop(doorbell: $0) }
    }

    private func loop(doorbell: Doorbell) async {
        // Finish the round in progress on graceful shutdown (bounded by its deadline); rows not yet
        // taken stay for the next start.
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let limit = configuration.batchSize
                let count = try await withDeadline(configuration.roundDeadline, "an outbox relay round") { [round] in
                    try await round.relayRound(limit: limit)
                }
                state.withLock {
                    $0.lastSuccess = .now
                    $0.consecutiveFailures = 0
                    $0.lastError = nil
                }
                published.increment(by: count)
                if count == configuration.batchSize { continue }
                await cancelWhenGracefulShutdown { await doorbell.wait(timeout: self.configuration.pollInterval) }
            } catch {
                if Task.isCancelled { return }
                failures.increment()
                let description = StoreFailure.describe(error)
                let failuresInARow = state.withLock { progress -> Int in
                    progress.consecutiveFailures += 1
                    progress.lastError = description
                    return progress.consecutiveFailures
                }
                let backoff = Self.backoff(after: failuresInARow, configuration: configuration)
                logger.warning("outbox relay round failed; rows stay for the next round", metadata: [
                    "error": "\(description)", "relay.failures_in_a_row": "\(failuresInARow)", "relay.backoff": "\(backoff)",
                ])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: backoff) }
            }
        }
    }

    public static func backoffForTesting(after failures: Int, configuration: Configuration) -> Duration {
        backoff(after: failures, configuration: configuration)
    }

    /// The wait after the `failures`-th failed round in a row: doubling from `errorBackoff`, capped.
    static func backoff(after failures: Int, configuration: Configuration) -> Duration {
        let factor = 1 << min(max(failures - 1, 0), 16)
        return min(configuration.errorBackoff * factor, configuration.maximumBackoff)
    }
}

/// Samples the outbox's backlog every `interval` into `herald_outbox_backlog_rows` and
/// `herald_outbox_oldest_due_age_seconds` (for the dashboards and the "relay stalled" alert). A
/// sample that fails leaves the last values; each has a deadline.
public final class OutboxMonitor: Service, Sendable {
    private let outbox: OutboxStore
    private let interval: Duration
    private let logger: Logger
    private let rows = Gauge(label: "herald_outbox_backlog_rows")
    private let oldest = Gauge(label: "herald_outbox_oldest_due_age_seconds")

    public init(outbox: OutboxStore, interval: Duration = .seconds(5), logger: Logger) {
        self.outbox = outbox
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let backlog = try await withDeadline(.seconds(3), "sampling the outbox backlog") { [outbox] in
                    try await outbox.backlog()
                }
                rows.record(backlog.rows)
                oldest.record(backlog.oldestDueSeconds)
            } catch {
                logger.debug("outbox backlog sample failed", metadata: ["error": "\(StoreFailure.describe(error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}
