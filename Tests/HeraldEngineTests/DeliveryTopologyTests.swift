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
}
