import Foundation
import HeraldBroker
import HeraldCore
import HeraldMessaging
import Testing

@Suite("DeliveryTopology")
struct DeliveryTopologyTests {
    @Test func quorumMakesBothQueuesOfAChannelQuorumQueues() {
        let topology = DeliveryTopology.topology(for: .webhook(), queueType: .quorum)
        #expect(topology.queues.map(\.name) == ["herald.channel.webhook", "herald.dlq.webhook"])
        for queue in topology.queues {
            #expect(queue.durable)
            #expect(queue.arguments["x-queue-type"] == .string("quorum"))
            // No delivery limit: a quorum queue would drop a message past it, leaving its delivery unfinished.
            #expect(queue.arguments["x-delivery-limit"] == nil)
        }
        #expect(topology.queues[0].arguments["x-dead-letter-routing-key"] == .string("herald.dlq.webhook"))
        #expect(topology.bindings == [QueueBinding(queue: "herald.channel.webhook", exchange: "herald.deliveries", routingKey: "webhook")])
    }

    @Test func classicDeclaresNoQueueType() {
        let topology = DeliveryTopology.topology(for: .webhook(), queueType: .classic)
        #expect(topology.queues.allSatisfy { $0.arguments["x-queue-type"] == nil })
        #expect(topology.queues[0].arguments == [
            "x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string("herald.dlq.webhook"),
        ])
    }

    @Test func everyChannelOfARegistryGetsTheType() {
        var sms = ChannelDefinition.webhook()
        sms.name = "sms"
        let topology = DeliveryTopology.topology(for: ChannelRegistry([.webhook(), sms]), queueType: .quorum)
        #expect(topology.queues.count == 4)
        #expect(topology.queues.allSatisfy { $0.arguments["x-queue-type"] == .string("quorum") })
        #expect(topology.exchanges.count == 1)
    }

    @Test func settingsParse() {
        #expect(DeliveryTopology.QueueType(setting: "quorum") == .quorum)
        #expect(DeliveryTopology.QueueType(setting: "Classic") == .classic)
        #expect(DeliveryTopology.QueueType(setting: "stream") == nil)
        #expect(DeliveryTopology.QueueType(setting: "") == nil)
    }

    static let requestTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    static func received(headers: [String: AMQPFieldValue]) -> IncomingMessage {
        IncomingMessage(
            deliveryTag: DeliveryTag(value: 1, generation: 1), body: [], exchange: DeliveryTopology.exchange, routingKey: "webhook",
            redelivered: false, messageID: nil, headers: headers)
    }

    static func job(traceparent: String?) -> DeliveryJob {
        var job = DeliveryJob(
            deliveryID: UUID(), notificationID: UUID(), channel: "webhook", attempt: 1, to: [:], message: MessageContent(text: "x"),
            metadata: .object([:]), acceptedAt: Date())
        job.traceparent = traceparent
        return job
    }

    @Test func theTraceTravelsAsAMessageHeader() {
        let message = DeliveryTopology.deliveryMessage(
            channel: "webhook", deliveryID: "d", attempt: 3, payload: [], traceparent: Self.requestTrace)
        #expect(message.headers == ["x-herald-attempt": .int(3), "traceparent": .string(Self.requestTrace)])
        #expect(DeliveryTopology.deliveryMessage(channel: "webhook", deliveryID: "d", attempt: 1, payload: []).headers["traceparent"] == nil)
    }

    @Test func aReceivedMessagesTraceIsItsHeaderElseTheJobs() {
        let other = "00-11111111111111111111111111111111-2222222222222222-01"
        let headed = Self.received(headers: ["traceparent": .string(Self.requestTrace)])
        #expect(DeliveryTopology.trace(of: headed, job: Self.job(traceparent: other))?.traceparent == Self.requestTrace)
        let bare = Self.received(headers: [:])
        #expect(DeliveryTopology.trace(of: bare, job: Self.job(traceparent: other))?.traceparent == other)
        let invalid = Self.received(headers: ["traceparent": .string("garbage")])
        #expect(DeliveryTopology.trace(of: invalid, job: Self.job(traceparent: other))?.traceparent == other)
        #expect(DeliveryTopology.trace(of: bare, job: Self.job(traceparent: nil)) == nil)
    }
}
