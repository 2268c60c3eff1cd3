import Foundation
import HeraldBroker
import HeraldCore

/// Herald's RabbitMQ layout, derived from the channels in force.
///
/// - `herald.deliveries` (direct exchange): routing key = channel name.
/// - `herald.channel.NAME`: the channel's work queue. A message rejected without requeue
///   (it can't be decoded) dead-letters into `herald.dlq.NAME`.
/// - `herald.retry.NAME.MSms`: one queue per delay tier with a queue-level TTL, dead-lettering
///   back to the work queue. RabbitMQ expires classic-queue messages only at the head, so mixing
///   delays in one queue would hold short delays behind long ones; one queue per tier doesn't.
/// - `herald.dlq.NAME`: deliveries that failed for good, kept for inspection and replay.
public enum DeliveryTopology {
    public static let exchange = "herald.deliveries"

    public static func workQueue(_ channel: String) -> String { "herald.channel.\(channel)" }
    public static func deadLetterQueue(_ channel: String) -> String { "herald.dlq.\(channel)" }
    public static func retryQueue(_ channel: String, delay: Duration) -> String {
        "herald.retry.\(channel).\(delay.milliseconds)ms"
    }

    public static func topology(for channel: ChannelDefinition) -> Topology {
        let name = channel.name
        var queues = [
            QueueDeclaration(name: workQueue(name), arguments: [
                "x-dead-letter-exchange": .string(""),
                "x-dead-letter-routing-key": .string(deadLetterQueue(name)),
            ]),
            QueueDeclaration(name: deadLetterQueue(name)),
        ]
        for delay in channel.retry.delayTiers {
            queues.append(QueueDeclaration(name: retryQueue(name, delay: delay), arguments: [
                "x-message-ttl": .int(delay.milliseconds),
                "x-dead-letter-exchange": .string(exchange),
                "x-dead-letter-routing-key": .string(name),
            ]))
        }
        return Topology(
            exchanges: [ExchangeDeclaration(name: exchange, type: "direct", durable: true)],
            queues: queues,
            bindings: [QueueBinding(queue: workQueue(name), exchange: exchange, routingKey: name)])
    }

    public static func topology(for registry: ChannelRegistry) -> Topology {
        var combined = Topology(exchanges: [], queues: [], bindings: [])
        for name in registry.names {
            guard let channel = registry[name] else { continue }
            let part = topology(for: channel)
            for exchange in part.exchanges where !combined.exchanges.contains(exchange) { combined.exchanges.append(exchange) }
            combined.queues += part.queues
            combined.bindings += part.bindings
        }
        return combined
    }

    /// The message that carries `payload` (a `DeliveryJob` as JSON) to its channel's work queue.
    public static func deliveryMessage(channel: String, deliveryID: String, payload: [UInt8]) -> OutgoingMessage {
        OutgoingMessage(exchange: exchange, routingKey: channel, body: payload, persistent: true, messageID: deliveryID)
    }

    /// The message that parks `job` in the delay queue for `delay`.
    public static func retryMessage(for job: DeliveryJob, delay: Duration) throws -> OutgoingMessage {
        OutgoingMessage(
            exchange: "", routingKey: retryQueue(job.channel, delay: delay), body: try job.encoded(), persistent: true,
            messageID: job.deliveryID.uuidString.lowercased())
    }

    /// The message that records `job` in the dead-letter queue, with why it ended there.
    public static func deadLetterMessage(for job: DeliveryJob, reason: String) throws -> OutgoingMessage {
        OutgoingMessage(
            exchange: "", routingKey: deadLetterQueue(job.channel), body: try job.encoded(), persistent: true,
            messageID: job.deliveryID.uuidString.lowercased(), headers: ["x-herald-reason": .string(reason)])
    }
}
