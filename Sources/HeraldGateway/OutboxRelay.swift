import HeraldBroker
import HeraldCore
import HeraldMessaging
import HeraldStore
import Logging
import Metrics
import ServiceLifecycle

/// Moves outbox rows to RabbitMQ: locks a batch, publishes it with confirms, deletes the rows, all
/// in one transaction. Woken right after each commit, and polls as a safety net (another gateway's
/// rows, a failed round). Several loops run at once; `SKIP LOCKED` keeps their batches disjoint.
public final class OutboxRelay: Service, Sendable {
    public struct Configuration: Sendable {
        /// Rows per transaction. Default 500.
        public var batchSize: Int = 500
        /// Loops at once. Default 2: one publishes while the other commits.
        public var concurrency: Int = 2
        /// Longest wait between rounds when nobody rings. Default 200 ms.
        public var pollInterval: Duration = .milliseconds(200)
        /// Wait after a failed round. Default 1 s.
        public var errorBackoff: Duration = .seconds(1)
        public init() {}
    }

    private let outbox: OutboxStore
    private let publisher: BrokerPublisher
    private let configuration: Configuration
    private let logger: Logger
    private let doorbells: [Doorbell]
    private let published = Counter(label: "herald_outbox_published_total")
    private let failures = Counter(label: "herald_outbox_publish_failures_total")

    public init(outbox: OutboxStore, publisher: BrokerPublisher, configuration: Configuration = .init(), logger: Logger) {
        self.outbox = outbox
        self.publisher = publisher
        self.configuration = configuration
        self.logger = logger
        self.doorbells = (0..<max(1, configuration.concurrency)).map { _ in Doorbell() }
    }

    /// New rows were committed: start a round now instead of at the next poll.
    public func wake() {
        doorbells.forEach { $0.ring() }
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for doorbell in doorbells {
                group.addTask { await self.loop(doorbell: doorbell) }
            }
        }
    }

    private func loop(doorbell: Doorbell) async {
        // Finish the round in progress on graceful shutdown; rows not yet taken stay for the next start.
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let count = try await outbox.relayBatch(limit: configuration.batchSize) { entries in
                    let messages = entries.map {
                        DeliveryTopology.deliveryMessage(
                            channel: $0.channel, deliveryID: $0.deliveryID.lowercasedString, payload: Array($0.payload.utf8))
                    }
                    try await self.publisher.publish(messages)
                }
                published.increment(by: count)
                if count == configuration.batchSize { continue }
                await cancelWhenGracefulShutdown { await doorbell.wait(timeout: self.configuration.pollInterval) }
            } catch {
                failures.increment()
                logger.warning("outbox relay round failed; rows stay for the next round", metadata: ["error": "\(error)"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.configuration.errorBackoff) }
            }
        }
    }
}
