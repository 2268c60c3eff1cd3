import Foundation
import HTTPTypes
import HeraldBroker
import HeraldConfig
import HeraldCore
import HeraldGateway
import HeraldMessaging
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing

/// Trace context and queue depth against the real RabbitMQ and PostgreSQL.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ObservabilityIntegrationTests {
    static let clientTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// The relay publishes the request's trace as the message's `traceparent` header: a consumer sees
    /// the trace without reading the job.
    @Test func theRelayPublishesTheRequestsTraceAsAMessageHeader() async throws {
        try await TestServers.withDatabase { _ in }
        let logger = TestServers.logger
        let channel = EndToEndTests.channel()
        var configuration = GatewayConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        configuration.port = 0
        configuration.allowPrivateTargets = true
        configuration.relay.pollInterval = .milliseconds(50)
        configuration.queueSampleInterval = nil
        let config = ConfigStore(ConfigSnapshot(version: "itest", registry: ChannelRegistry([channel])))
        let (gateway, _) = try buildGateway(configuration: configuration, config: config, logger: logger)
        let (token, _) = try await TestServers.createKey()
        let consumer = BrokerConsumer(
            endpoint: try AMQPEndpoint(url: TestServers.amqpURL), queue: DeliveryTopology.workQueue(channel.name), prefetch: 10,
            topology: DeliveryTopology.topology(for: channel, queueType: .classic), logger: logger)
        try await BrokerTestSupport.withRunning(consumer) {
            try await gateway.test(.live) { client in
                _ = try await eventually("the gateway to be ready") {
                    try await client.execute(uri: "/readyz", method: .get).status == .ok ? true : nil
                }
                let response = try await client.execute(
                    uri: "/v1/notifications", method: .post,
                    headers: [.contentType: "application/json", .authorization: "Bearer \(token)", HTTPField.Name("traceparent")!: Self.clientTrace],
                    body: ByteBuffer(string: #"{"channel": "\#(channel.name)", "to": {"webhook_url": "https://example.com/h"}, "message": {"text": "t"}}"#))
                #expect(response.status == .accepted)
                let answered = try #require(response.headers[HTTPField.Name("traceparent")!].flatMap(TraceContext.init(traceparent:)))
                #expect(answered.traceID == "4bf92f3577b34da6a3ce929d0e0e4736", "the gateway continues the client's trace")
                #expect(answered.spanID != "00f067aa0ba902b7", "with a span of its own")

                let message = try #require(try await consumer.next())
                consumer.ack(message.deliveryTag)
                guard case .string(let header)? = message.headers["traceparent"] else {
                    Issue.record("the message has no traceparent header: \(message.headers)")
                    return
                }
                #expect(header == answered.traceparent)
                #expect(message.headers["x-herald-attempt"] == .int(1))
            }
        }
    }

    /// The whole way: the client's trace id reaches the provider request (a span of the attempt's).
    @Test func theTraceReachesTheProviderRequest() async throws {
        let channel = EndToEndTests.channel()
        try await EndToEndTests.withHerald(channel: channel, receiver: WebhookReceiver()) { harness in
            let response = try await harness.client.execute(
                uri: "/v1/notifications", method: .post,
                headers: [.contentType: "application/json", HTTPField.Name("traceparent")!: Self.clientTrace],
                body: ByteBuffer(string: #"{"channel": "\#(channel.name)", "to": {"webhook_url": "\#(harness.receiver.url)"}, "message": {"text": "t"}}"#))
            #expect(response.status == .accepted)
            let id = try #require(try EndToEndTests.document(response)["id"]?.stringValue)
            _ = try await EndToEndTests.waitForTerminal(harness.client, id: id)
            let received = try #require(harness.receiver.requests.first)
            let forwarded = try #require(received.headers["traceparent"].flatMap(TraceContext.init(traceparent:)))
            #expect(forwarded.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
            #expect(forwarded.traceparent != response.headers[HTTPField.Name("traceparent")!], "the attempt is a span of its own")
        }
    }

    /// A passive declare reads a queue's ready messages and consumers; a missing queue is left out
    /// and does not spoil the others.
    @Test func theInspectorReadsDepthAndConsumersFromTheBroker() async throws {
        let endpoint = try AMQPEndpoint(url: TestServers.amqpURL)
        let logger = TestServers.logger
        let queue = BrokerTestSupport.uniqueName("depth")
        let missing = BrokerTestSupport.uniqueName("missing")
        let topology = Topology(queues: [QueueDeclaration(name: queue, arguments: ["x-expires": .int(60_000)])])
        let publisher = BrokerPublisher(endpoint: endpoint, topology: topology, logger: logger)
        try await BrokerTestSupport.withRunning(publisher) {
            try await publisher.publish((0..<3).map { OutgoingMessage(exchange: "", routingKey: queue, body: Array("m\($0)".utf8)) })
        }
        let inspector = BrokerQueueInspector(endpoints: [endpoint], logger: logger)
        let before = try await inspector.inspect([missing, queue, missing])
        #expect(before == [queue: QueueDepth(messagesReady: 3, consumers: 0)])

        let consumer = BrokerConsumer(endpoint: endpoint, queue: queue, prefetch: 1, topology: topology, logger: logger)
        try await BrokerTestSupport.withRunning(consumer) {
            let first = try #require(try await consumer.next())
            // One message is out (unacked, not ready), two wait, and the queue has its consumer.
            let during = try await inspector.inspect([queue])
            #expect(during == [queue: QueueDepth(messagesReady: 2, consumers: 1)])
            consumer.ack(first.deliveryTag)
        }
    }

    @Test func anUnreachableBrokerIsAnErrorNotAnEmptyAnswer() async throws {
        let closed = try AMQPEndpoint(url: "amqp://guest:guest@127.0.0.1:1/")
        let inspector = BrokerQueueInspector(
            endpoints: [closed], options: .init(connectTimeout: .seconds(1), rpcTimeout: .seconds(1)), logger: TestServers.logger)
        await #expect(throws: BrokerError.self) { try await inspector.inspect(["herald.channel.webhook"]) }
    }
}
