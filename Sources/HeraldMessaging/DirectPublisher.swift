import HeraldBroker
import HeraldCore
import HeraldStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// One direct round's I/O: publish these rows with confirms, then remove them from the outbox.
public protocol DirectPublishRound: Sendable {
    func publish(_ entries: [OutboxEntry]) async throws
    func remove(_ ids: [Int64]) async throws
}

/// The real round: RabbitMQ with confirms, then one DELETE by key.
public struct LiveDirectPublishRound: DirectPublishRound {
    let outbox: OutboxStore
    let publisher: BrokerPublisher

    public init(outbox: OutboxStore, publisher: BrokerPublisher) {
        self.outbox = outbox
        self.publisher = publisher
    }

    public func publish(_ entries: [OutboxEntry]) async throws {
        try await publisher.publish(entries.map(DeliveryTopology.deliveryMessage(for:)))
    }

    public func remove(_ ids: [Int64]) async throws {
        try await outbox.remove(published: ids)
    }
}

/// Publishes freshly accepted deliveries right after their transaction committed, instead of leaving
/// them for the relay to find: the gateway already holds every job it just stored. Their outbox rows
/// were written due a grace period later (`NotificationStore.accept(_:publishingDirectly:)`), so they
/// stay the guarantee: a row this publisher could not publish and remove in time (the broker was
/// down, the process died) is published by the relay when it comes due. Publishing twice is
/// harmless: the workers' claim acks a second message for an attempt that ran.
///
/// `enqueue` never waits: a round takes everything queued (up to `batchSize`), so under load one
/// confirm and one DELETE serve many notifications. Beyond `capacity` queued rows the rest are
/// left to the relay rather than held in memory.
public final class DirectPublisher: Service, Sendable {
    public struct Configuration: Sendable {
        /// Rows per publish and per DELETE. Default 500.
        public var batchSize: Int = 500
        /// Rounds at once. Default 2: one publishes while the other removes.
        public var concurrency: Int = 2
        /// Rows held before new ones are left to the relay. Default 20,000.
        public var capacity: Int = 20_000
        /// Longest a round may take. Default 5 s (the rows are the relay's after that anyway).
        public var roundDeadline: Duration = .seconds(5)
        public init() {}
    }

    private struct Queued {
        var entry: OutboxEntry
        var since: ContinuousClock.Instant
    }

    private struct State {
        var queue: [Queued] = []
        var head = 0
        var shuttingDown = false
        var count: Int { queue.count - head }

        mutating func take(_ limit: Int) -> [Queued] {
            let end = min(queue.count, head + limit)
            let taken = Array(queue[head..<end])
            head = end
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 4096 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return taken
        }
    }

    private let round: any DirectPublishRound
    private let configuration: Configuration
    private let logger: Logger
    private let state = Mutex(State())
    private let doorbells: [Doorbell]
    private let published = Counter(label: "herald_outbox_direct_published_total")
    private let leftToRelay = Counter(label: "herald_outbox_direct_left_to_relay_total")
    private let lag = Timer(label: "herald_outbox_publish_lag_seconds")

    public init(round: any DirectPublishRound, configuration: Configuration = .init(), logger: Logger) {
        self.round = round
        self.configuration = configuration
        self.logger = logger
        self.doorbells = (0..<max(1, configuration.concurrency)).map { _ in Doorbell() }
    }

    public convenience init(outbox: OutboxStore, publisher: BrokerPublisher, configuration: Configuration = .init(), logger: Logger) {
        self.init(round: LiveDirectPublishRound(outbox: outbox, publisher: publisher), configuration: configuration, logger: logger)
    }

    /// Rows waiting for a round.
    public var queued: Int { state.withLock { $0.count } }

    /// Hands over committed rows to publish now. Never waits.
    public func enqueue(_ entries: [OutboxEntry]) {
        guard !entries.isEmpty else { return }
        let overflow = state.withLock { state -> Int in
            guard !state.shuttingDown else { return entries.count }
            let room = max(0, configuration.capacity - state.count)
            let now = ContinuousClock.now
            state.queue.append(contentsOf: entries.prefix(room).map { Queued(entry: $0, since: now) })
            return entries.count - min(room, entries.count)
        }
        if overflow > 0 { leftToRelay.increment(by: overflow) }
        doorbells.forEach { $0.ring() }
    }

    public func run() async throws {
        await doorbells.runLoops { await self.loop(doorbell: $0) }
    }

    private func loop(doorbell: Doorbell) async {
        while true {
            let stopping = Task.isShuttingDownGracefully || Task.isCancelled
            let batch = state.withLock { state -> [Queued] in
                if stopping { state.shuttingDown = true }
                return state.take(configuration.batchSize)
            }
            if batch.isEmpty {
                // Drained on shutdown: what is left, if anything, is the relay's.
                if stopping { return }
                await cancelWhenGracefulShutdown { await doorbell.wait(timeout: .seconds(1)) }
                continue
            }
            await publishRound(batch)
        }
    }

    private func publishRound(_ queued: [Queued]) async {
        let round = self.round
        let batch = queued.map(\.entry)
        do {
            try await withDeadline(configuration.roundDeadline, "publishing accepted deliveries") {
                try await round.publish(batch)
            }
        } catch {
            leftToRelay.increment(by: batch.count)
            logger.warning("publishing accepted deliveries failed; the outbox relay publishes them after the grace period", metadata: [
                "error": "\(StoreFailure.describe(error))", "rows": "\(batch.count)",
            ])
            return
        }
        published.increment(by: batch.count)
        // The relay's lag metric, from the commit (when these rows were due for the gateway) to the confirm.
        let now = ContinuousClock.now
        for item in queued { lag.record(duration: now - item.since) }
        do {
            let ids = batch.map(\.id)
            try await withDeadline(configuration.roundDeadline, "removing published outbox rows") { try await round.remove(ids) }
        } catch {
            // Published but still in the outbox: the relay publishes them again (a no-op for the workers).
            logger.warning("removing published outbox rows failed; the relay will publish them a second time", metadata: [
                "error": "\(StoreFailure.describe(error))", "rows": "\(batch.count)",
            ])
        }
    }
}
