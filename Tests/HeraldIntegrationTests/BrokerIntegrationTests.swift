import Foundation
import HeraldBroker
import Logging
import ServiceLifecycle
import Testing

/// Integration tests of `HeraldBroker` against a real RabbitMQ.
///
/// URL from `HERALD_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/`). When the variable is
/// set the broker is required (the tests fail if it is down); when it is not set and nothing
/// answers on the default URL, the suite is skipped.
@Suite(.serialized, .enabled("RabbitMQ reachable (set HERALD_AMQP_URL to require it)") { await BrokerTestSupport.brokerAvailable() })
struct BrokerIntegrationTests {
    let endpoint = BrokerTestSupport.endpoint
    let logger = BrokerTestSupport.logger

    @Test(.timeLimit(.minutes(2)))
    func publishFiveThousandConcurrentlyThenConsumeEachOnce() async throws {
        let queue = BrokerTestSupport.uniqueName("bulk")
        let topology = Topology(queues: [QueueDeclaration(name: queue, arguments: ["x-expires": .int(120_000)])])
        let publisher = BrokerPublisher(endpoint: endpoint, topology: topology, logger: logger)
        let total = 5_000
        let batchSize = 100

        let publishSeconds = try await BrokerTestSupport.withRunning(publisher) {
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for batch in 0..<(total / batchSize) {
                    group.addTask {
                        let messages = (0..<batchSize).map { i in
                            let n = batch * batchSize + i
                            return OutgoingMessage(exchange: "", routingKey: queue, body: Array("message-\(n)".utf8),
                                                   messageID: "id-\(n)", headers: ["n": .int(Int64(n)), "even": .bool(n % 2 == 0)])
                        }
                        try await publisher.publish(messages)
                    }
                }
                try await group.waitForAll()
            }
            return BrokerTestSupport.seconds(ContinuousClock.now - start)
        }
        print("[broker-integration] published+confirmed \(total) persistent messages in \(String(format: "%.3f", publishSeconds)) s (\(Int(Double(total) / publishSeconds)) msg/s)")

        let consumer = BrokerConsumer(endpoint: endpoint, queue: queue, prefetch: 200, topology: topology, logger: logger)
        let (bodies, consumeSeconds) = try await BrokerTestSupport.withRunning(consumer) {
            let start = ContinuousClock.now
            var bodies: [String: Int] = [:]
            while bodies.values.reduce(0, +) < total {
                guard let message = try await consumer.next() else { break }
                let body = String(decoding: message.body, as: UTF8.self)
                bodies[body, default: 0] += 1
                #expect(message.messageID == "id-\(body.dropFirst("message-".count))")
                #expect(message.headers["n"] == .int(Int64(body.dropFirst("message-".count))!))
                consumer.ack(message.deliveryTag)
            }
            return (bodies, BrokerTestSupport.seconds(ContinuousClock.now - start))
        }
        print("[broker-integration] consumed+acked \(total) messages in \(String(format: "%.3f", consumeSeconds)) s (\(Int(Double(total) / consumeSeconds)) msg/s)")
        #expect(bodies.count == total)
        #expect(bodies.values.allSatisfy { $0 == 1 })
        #expect(Set(bodies.keys) == Set((0..<total).map { "message-\($0)" }))
    }

    @Test(.timeLimit(.minutes(1)))
    func unackedMessageIsRedeliveredToTheNextConsumer() async throws {
        let queue = BrokerTestSupport.uniqueName("redeliver")
        let topology = Topology(queues: [QueueDeclaration(name: queue, arguments: ["x-expires": .int(60_000)])])
        let publisher = BrokerPublisher(endpoint: endpoint, topology: topology, logger: logger)
        try await BrokerTestSupport.withRunning(publisher) {
            try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue, body: Array("once".utf8))])
        }

        let fastShutdown = BrokerConnectionOptions(shutdownGracePeriod: .milliseconds(300))
        let first = BrokerConsumer(endpoint: endpoint, queue: queue, prefetch: 10, options: fastShutdown, logger: logger)
        let delivered = try await BrokerTestSupport.withRunning(first) {
            let message = try #require(try await first.next())
            #expect(!message.redelivered)
            return message
        }  // stops `first` without acking
        // Acking after the connection is gone is dropped, not applied to another delivery.
        first.ack(delivered.deliveryTag)

        let second = BrokerConsumer(endpoint: endpoint, queue: queue, prefetch: 10, logger: logger)
        try await BrokerTestSupport.withRunning(second) {
            let again = try #require(try await second.next())
            #expect(String(decoding: again.body, as: UTF8.self) == "once")
            #expect(again.redelivered)
            second.ack(again.deliveryTag)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func ttlDelayQueueDeadLettersIntoTheWorkQueue() async throws {
        let work = BrokerTestSupport.uniqueName("work")
        let delay = BrokerTestSupport.uniqueName("delay-1s")
        let topology = Topology(queues: [
            QueueDeclaration(name: work, arguments: ["x-expires": .int(60_000)]),
            QueueDeclaration(name: delay, arguments: [
                "x-message-ttl": .int(1_000),
                "x-dead-letter-exchange": .string(""),
                "x-dead-letter-routing-key": .string(work),
                "x-expires": .int(60_000),
            ]),
        ])
        let publisher = BrokerPublisher(endpoint: endpoint, topology: topology, logger: logger)
        let consumer = BrokerConsumer(endpoint: endpoint, queue: work, prefetch: 5, topology: topology, logger: logger)
        try await BrokerTestSupport.withRunning(publisher, consumer) {
            let sent = ContinuousClock.now
            try await publisher.publish([OutgoingMessage(exchange: "", routingKey: delay, body: Array("later".utf8), messageID: "d1")])
            let message = try #require(try await consumer.next())
            let waited = ContinuousClock.now - sent
            #expect(String(decoding: message.body, as: UTF8.self) == "later")
            #expect(message.messageID == "d1")
            #expect(message.routingKey == work)
            #expect(message.headers["x-first-death-reason"] == .string("expired"))
            #expect(waited >= .milliseconds(900), "delivered after \(waited), before the TTL")
            consumer.ack(message.deliveryTag)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func publishToMissingExchangeFailsAndThePublisherRecovers() async throws {
        let queue = BrokerTestSupport.uniqueName("recover")
        let topology = Topology(queues: [QueueDeclaration(name: queue, arguments: ["x-expires": .int(60_000)])])
        let publisher = BrokerPublisher(endpoint: endpoint, topology: topology, logger: logger)
        try await BrokerTestSupport.withRunning(publisher) {
            await #expect {
                try await publisher.publish([OutgoingMessage(exchange: "herald-no-such-exchange", routingKey: "x", body: [1])])
            } throws: { error in
                guard let error = error as? BrokerError else { return false }
                return error.code == .connectionClosed || error.code == .channelClosed
            }
            // Reconnects (with backoff) and the next publish goes through.
            try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue, body: [2])])
            // Runtime declaration, kept for later reconnects.
            let extra = BrokerTestSupport.uniqueName("declared")
            try await publisher.declare(Topology(
                exchanges: [ExchangeDeclaration(name: extra, type: "direct", durable: false)],
                queues: [QueueDeclaration(name: extra, arguments: ["x-expires": .int(60_000)])],
                bindings: [QueueBinding(queue: extra, exchange: extra, routingKey: "k")]
            ))
            try await publisher.publish([OutgoingMessage(exchange: extra, routingKey: "k", body: [3])])
            #expect(publisher.isConnected)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func heartbeatsKeepIdleConnectionsOpen() async throws {
        // 1 s heartbeat: the broker drops a connection that stays silent for ~2 intervals, so an
        // idle publisher and consumer must send heartbeats from their threads.
        var fastHeartbeat = endpoint
        fastHeartbeat.heartbeatSeconds = 1
        let queue = BrokerTestSupport.uniqueName("heartbeat")
        let topology = Topology(queues: [QueueDeclaration(name: queue, arguments: ["x-expires": .int(60_000)])])
        let publisher = BrokerPublisher(endpoint: fastHeartbeat, topology: topology, logger: logger)
        let consumer = BrokerConsumer(endpoint: fastHeartbeat, queue: queue, prefetch: 1, topology: topology, logger: logger)
        try await BrokerTestSupport.withRunning(publisher, consumer) {
            while !(publisher.isConnected && consumer.isConnected) { try await Task.sleep(for: .milliseconds(10)) }
            let idleUntil = ContinuousClock.now + .seconds(4)
            while ContinuousClock.now < idleUntil {
                #expect(publisher.isConnected && consumer.isConnected)
                try await Task.sleep(for: .milliseconds(20))
            }
            try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue, body: Array("alive".utf8))])
            let message = try #require(try await consumer.next())
            #expect(message.body == Array("alive".utf8))
            consumer.ack(message.deliveryTag)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func publishBeforeTheBrokerIsReachableWaitsThenFailsOnShutdown() async throws {
        // Nothing listens on port 1: the publisher keeps retrying; publish waits; shutdown fails it.
        var unreachable = endpoint
        unreachable.port = 1
        let publisher = BrokerPublisher(endpoint: unreachable, options: .init(connectTimeout: .milliseconds(200)), logger: logger)
        let run = Task { try await publisher.run() }
        let publish = Task { try await publisher.publish([OutgoingMessage(exchange: "", routingKey: "q", body: [1])]) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(!publisher.isConnected)
        run.cancel()
        try await run.value
        await #expect { try await publish.value } throws: { ($0 as? BrokerError)?.code == .shutdown }
        await #expect { try await publisher.publish([OutgoingMessage(exchange: "", routingKey: "q", body: [1])]) } throws: {
            ($0 as? BrokerError)?.code == .shutdown
        }
    }
}

enum BrokerTestSupport {
    static let url = ProcessInfo.processInfo.environment["HERALD_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
    static let required = ProcessInfo.processInfo.environment["HERALD_AMQP_URL"] != nil

    static var endpoint: AMQPEndpoint {
        do { return try AMQPEndpoint(url: url) } catch { fatalError("HERALD_AMQP_URL: \(error)") }
    }

    static var logger: Logger {
        var logger = Logger(label: "herald.broker.integration")
        logger.logLevel = ProcessInfo.processInfo.environment["HERALD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        return logger
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func uniqueName(_ prefix: String) -> String {
        "herald-test-\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Tries to connect once (2 s). When HERALD_AMQP_URL is set, the suite runs regardless.
    static func brokerAvailable() async -> Bool {
        if required { return true }
        let publisher = BrokerPublisher(endpoint: endpoint, options: .init(connectTimeout: .seconds(2)), logger: logger)
        let run = Task { try await publisher.run() }
        defer { run.cancel() }
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            if publisher.isConnected { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Runs the services while `body` runs, then cancels them (graceful close) and waits for them.
    static func withRunning<T: Sendable>(_ services: any Service..., body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services {
                group.addTask { try await service.run() }
            }
            do {
                let result = try await body()
                group.cancelAll()
                try await group.waitForAll()
                return result
            } catch {
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}
