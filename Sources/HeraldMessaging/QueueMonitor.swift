import HeraldBroker
import HeraldCore
import Logging
import Metrics
import ServiceLifecycle

/// Samples each channel's work queue from the broker every `interval` into
/// `herald_queue_messages_ready{channel}` and `herald_queue_consumers{channel}`: the queue depth
/// and whether anyone consumes it, labelled by channel like every other Herald series (so the
/// "queue growing with no consumer" alert carries a `channel` label, and the alert route's loop
/// guard applies to it). A failed sample leaves the last values and is retried at the next tick;
/// each sample has a deadline.
public final class QueueMonitor: Service, Sendable {
    private let inspector: BrokerQueueInspector
    private let channels: @Sendable () -> [String]
    private let interval: Duration
    private let logger: Logger

    /// - Parameter channels: the channels whose queues to sample (read at every sample: a reload
    ///   adds and removes channels).
    public init(inspector: BrokerQueueInspector, channels: @escaping @Sendable () -> [String], interval: Duration, logger: Logger) {
        self.inspector = inspector
        self.channels = channels
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await sample()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }

    /// One sample of every channel's queue.
    public func sample() async {
        let names = channels()
        let queues = names.map(DeliveryTopology.workQueue)
        do {
            let depths = try await withDeadline(.seconds(15), "sampling the channel queues") { [inspector] in
                try await inspector.inspect(queues)
            }
            for (name, queue) in zip(names, queues) {
                guard let depth = depths[queue] else { continue }
                Gauge(label: "herald_queue_messages_ready", dimensions: [("channel", name)]).record(depth.messagesReady)
                Gauge(label: "herald_queue_consumers", dimensions: [("channel", name)]).record(depth.consumers)
            }
        } catch {
            logger.debug("queue depth sample failed", metadata: ["error.message": "\(error)"])
        }
    }
}
