import Foundation
import HeraldBroker
import HeraldCore

/// Herald's RabbitMQ layout, derived from the channels in force.
///
/// - `herald.deliveries` (direct exchange): routing key = channel name.
/// - `herald.channel.NAME`: the channel's work queue.
/// - `herald.dlq.NAME`: kept declared because the work queues' arguments name it; nothing is routed
///   there any more. Dead letters are data (failed deliveries in PostgreSQL, listed and replayed
///   through the API), undecodable messages go to the `poison_messages` table, and retries wait in
///   the outbox (`not_before`), so no message waits in the broker for long.
///
/// Both queues are of the deployment's `QueueType`: `quorum` for a RabbitMQ cluster (replicated
/// with Raft, they survive the loss of a minority of nodes, including the leader), `classic` for
/// a single node.
public enum DeliveryTopology {
    /// The kind of RabbitMQ queue Herald declares (`x-queue-type`). RabbitMQ can't change the type
    /// of an existing queue: declaring it with another type is refused (406 PRECONDITION_FAILED
    /// "inequivalent arg 'x-queue-type'"), so a broker's queues keep the type they were made with
    /// until they are drained and deleted.
    public enum QueueType: String, Sendable, Hashable, CaseIterable {
        /// One copy on one node: fastest, and what a single-node development broker uses. Default.
        case classic
        /// Replicated over the cluster's nodes (Raft); needs durable queues, which Herald's are.
        /// No `x-delivery-limit` is set: a message is redelivered until a worker records its
        /// outcome, since a message dropped by a limit would leave its delivery unfinished.
        case quorum

        /// Parses `classic` or `quorum` (any case); nil for anything else.
        public init?(setting: String) {
            self.init(rawValue: setting.lowercased())
        }

        var arguments: [String: AMQPFieldValue] {
            switch self {
            case .classic: [:]
            case .quorum: ["x-queue-type": .string("quorum")]
            }
        }
    }

    public static let exchange = "herald.deliveries"
    /// The message header with the attempt number a message is for.
    public static let attemptHeader = "x-herald-attempt"

    public static func workQueue(_ channel: String) -> String { "herald.channel.\(channel)" }
    public static func deadLetterQueue(_ channel: String) -> String { "herald.dlq.\(channel)" }

    public static func topology(for channel: ChannelDefinition, queueType: QueueType) -> Topology {
        let name = channel.name
        let queues = [
            QueueDeclaration(name: workQueue(name), arguments: queueType.arguments.merging([
                "x-dead-letter-exchange": .string(""),
                "x-dead-letter-routing-key": .string(deadLetterQueue(name)),
            ]) { _, new in new }),
            QueueDeclaration(name: deadLetterQueue(name), arguments: queueType.arguments),
        ]
        return Topology(
            exchanges: [ExchangeDeclaration(name: exchange, type: "direct", durable: true)],
            queues: queues,
            bindings: [QueueBinding(queue: workQueue(name), exchange: exchange, routingKey: name)])
    }

    public static func topology(for registry: ChannelRegistry, queueType: QueueType) -> Topology {
        var combined = Topology(exchanges: [], queues: [], bindings: [])
        for name in registry.names {
            guard let channel = registry[name] else { continue }
            let part = topology(for: channel, queueType: queueType)
            for exchange in part.exchanges where !combined.exchanges.contains(exchange) { combined.exchanges.append(exchange) }
            combined.queues += part.queues
            combined.bindings += part.bindings
        }
        return combined
    }

    /// The message that carries `payload` (a `DeliveryJob` as JSON) to its channel's work queue for
    /// attempt `attempt` (in a header: the stored job is published unchanged for every attempt), with
    /// the W3C `traceparent` of the request that created it as a header of its own, when it has one.
    public static func deliveryMessage(
        channel: String, deliveryID: String, attempt: Int, payload: [UInt8], traceparent: String? = nil
    ) -> OutgoingMessage {
        var headers: [String: AMQPFieldValue] = [attemptHeader: .int(Int64(attempt))]
        if let traceparent { headers[traceHeader] = .string(traceparent) }
        return OutgoingMessage(
            exchange: exchange, routingKey: channel, body: payload, persistent: true, messageID: deliveryID, headers: headers)
    }

    /// The attempt a received message is for: its header, else the job's own number.
    public static func attempt(of message: IncomingMessage, job: DeliveryJob) -> Int {
        if case .int(let value)? = message.headers[attemptHeader], value > 0, value < Int64(Int32.max) { return Int(value) }
        return job.attempt
    }

    /// The message header with the W3C trace context (the name HTTP uses; what OpenTelemetry's
    /// AMQP propagation reads).
    public static let traceHeader = "traceparent"

    /// The trace a received message belongs to: its `traceparent` header, else the one stored in the
    /// job (a message published before the header existed); nil when neither is valid.
    public static func trace(of message: IncomingMessage, job: DeliveryJob) -> TraceContext? {
        if case .string(let value)? = message.headers[traceHeader], let trace = TraceContext(traceparent: value) { return trace }
        return job.traceparent.flatMap(TraceContext.init(traceparent:))
    }
}
