public import Logging
import Synchronization

/// What RabbitMQ says about one queue right now.
public struct QueueDepth: Sendable, Hashable {
    /// Messages waiting to be delivered (not counting those delivered and not yet acked).
    public var messagesReady: Int
    public var consumers: Int

    public init(messagesReady: Int, consumers: Int) {
        self.messagesReady = messagesReady
        self.consumers = consumers
    }
}

/// Asks the broker how deep queues are: one short connection per call (on its own thread, never on
/// Swift's cooperative pool), a passive `queue.declare` per queue, then a polite close. A separate
/// connection, because a passive declare of a missing queue closes its channel, which must never
/// be the publisher's or a consumer's.
///
/// The endpoints are tried in order until one connects. Every step is bounded by the options'
/// connect and RPC timeouts.
public final class BrokerQueueInspector: Sendable {
    private let endpoints: [AMQPEndpoint]
    private let options: BrokerConnectionOptions
    private let logger: Logger

    /// - Parameter options: default 5 s to connect and 5 s per RPC: a sample is worth less than a wait.
    public init(
        endpoints: [AMQPEndpoint], options: BrokerConnectionOptions = .init(connectTimeout: .seconds(5), rpcTimeout: .seconds(5)),
        logger: Logger
    ) {
        precondition(!endpoints.isEmpty, "BrokerQueueInspector needs at least one endpoint")
        self.endpoints = endpoints
        self.options = options
        self.logger = logger
    }

    /// The depth of each queue that exists; a queue the broker doesn't know is left out. Throws the
    /// last connection error when no endpoint answers.
    public func inspect(_ queues: [String]) async throws -> [String: QueueDepth] {
        let outcome = Mutex<Result<[String: QueueDepth], BrokerError>>(.success([:]))
        await DedicatedThread.run(name: "amqp-inspector") {
            let result = self.inspectBlocking(queues)
            outcome.withLock { $0 = result }
        }
        return try outcome.withLock { $0 }.get()
    }

    private func inspectBlocking(_ queues: [String]) -> Result<[String: QueueDepth], BrokerError> {
        var lastError = BrokerError(code: .connectionFailed, message: "no endpoint to connect to", isRetriable: true)
        for endpoint in endpoints {
            let connection: AMQPConnection
            do throws(BrokerError) {
                connection = try AMQPConnection(options.connectionSettings(endpoint: endpoint, role: "inspector"))
                try connection.openChannel()
            } catch {
                lastError = error
                continue
            }
            var depths: [String: QueueDepth] = [:]
            do throws(BrokerError) {
                for queue in queues {
                    do throws(BrokerError) {
                        depths[queue] = try connection.inspect(queue: queue)
                    } catch where error.code == .channelClosed {
                        // 404: the queue doesn't exist (yet); the broker closed the channel, so open another.
                        logger.debug("queue to inspect does not exist", metadata: ["amqp.queue": "\(queue)", "error": "\(error)"])
                        try connection.openChannel()
                    }
                }
            } catch {
                connection.abandon()
                return .failure(error)
            }
            connection.close()
            return .success(depths)
        }
        return .failure(lastError)
    }
}
