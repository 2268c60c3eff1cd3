public import Logging
public import ServiceLifecycle
import Synchronization

/// One AMQP connection (on its own thread) consuming one queue with `basic.qos` prefetch and
/// manual acks.
///
/// Pull-based and bounded: the broker never has more than `prefetch` unacked deliveries out, the
/// connection thread parks those that arrive before anyone asks (at most `prefetch`) and hands
/// one over per `next()` call. Acks and rejects are queued to the connection thread without
/// blocking. After a reconnect the broker redelivers everything that was not acked; settles for
/// deliveries of the old connection are dropped (see `DeliveryTag`).
///
/// Graceful shutdown: `next()` returns `nil`, the consumer is cancelled, parked deliveries are
/// requeued, and the connection stays open up to `BrokerConnectionOptions.shutdownGracePeriod`
/// so in-progress messages can still be acked; whatever is unacked then is redelivered later.
public final class BrokerConsumer: Service, Sendable {
    typealias Waiter = CheckedContinuation<IncomingMessage?, any Error>
    private typealias StateMachine = ConsumerStateMachine<Waiter>

    private let endpoints: [AMQPEndpoint]
    private let queue: String
    private let prefetch: UInt16
    private let topology: Topology
    private let options: BrokerConnectionOptions
    private let logger: Logger
    private let state = Mutex(StateMachine())
    private let wake = WakeSignal()

    /// - Parameters:
    ///   - queue: consumed with manual acks; declare it through `topology` if it may not exist.
    ///   - prefetch: maximum unacked deliveries (`basic.qos`); `0` (unlimited in AMQP) is taken as 1.
    ///   - topology: declared on every (re)connect before consuming.
    public convenience init(endpoint: AMQPEndpoint, queue: String, prefetch: UInt16, topology: Topology = .init(), logger: Logger) {
        self.init(endpoint: endpoint, queue: queue, prefetch: prefetch, topology: topology, options: .init(), logger: logger)
    }

    public convenience init(
        endpoint: AMQPEndpoint, queue: String, prefetch: UInt16, topology: Topology = .init(), options: BrokerConnectionOptions, logger: Logger
    ) {
        self.init(endpoints: [endpoint], queue: queue, prefetch: prefetch, topology: topology, options: options, logger: logger)
    }

    /// - Parameter endpoints: the nodes of one RabbitMQ cluster, tried in turn (`EndpointRotation`):
    ///   a lost connection moves to the next node at once. Must not be empty.
    public init(
        endpoints: [AMQPEndpoint], queue: String, prefetch: UInt16, topology: Topology = .init(),
        options: BrokerConnectionOptions = .init(), logger: Logger
    ) {
        precondition(!endpoints.isEmpty, "BrokerConsumer needs at least one endpoint")
        self.endpoints = endpoints
        self.queue = queue
        self.prefetch = max(1, prefetch)
        self.topology = topology
        self.options = options
        var logger = logger
        logger[metadataKey: "amqp.role"] = "consumer"
        logger[metadataKey: "amqp.queue"] = "\(queue)"
        self.logger = logger
    }

    /// `true` while consuming on a live connection.
    public var isConnected: Bool {
        state.withLock { $0.isConnected }
    }

    public func run() async throws {
        guard state.withLock({ $0.start() }) else {
            if state.withLock({ $0.lifecycle == .finished }) { return }
            throw BrokerError(code: .protocolError, message: "BrokerConsumer.run() called twice", isRetriable: false)
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await DedicatedThread.run(name: "amqp-consumer") { self.connectionThread() }
            } onCancel: {
                self.requestShutdown()
            }
        } onGracefulShutdown: {
            self.requestShutdown()
        }
    }

    /// Waits for the next delivery; `nil` once shutdown began. Throws `CancellationError` if the
    /// calling task is cancelled while waiting.
    public func next() async throws -> IncomingMessage? {
        switch state.withLock({ $0.pollNext() }) {
        case .deliver(let message): return message
        case .finished: return nil
        case .suspend: break
        }
        let id = state.withLock { $0.makeWaiterID() }
        defer {
            if Task.isCancelled { state.withLock { $0.clearCancelled(id: id) } }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                switch state.withLock({ $0.wait(id: id, waiter: continuation) }) {
                case .deliver(let message): continuation.resume(returning: message)
                case .finished: continuation.resume(returning: nil)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .stored: break
                }
            }
        } onCancel: {
            state.withLock { $0.cancelWait(id: id) }?.resume(throwing: CancellationError())
        }
    }

    /// Stops handing out deliveries, as graceful shutdown does: `next()` returns nil from now on,
    /// parked deliveries go back to the queue, and the connection stays up (for the grace period)
    /// so the deliveries in progress can still be acked. For a caller that stops before the
    /// consumer's own service is shut down, without racing every `next()` against shutdown.
    public func stopDelivering() {
        requestShutdown()
    }

    /// Acknowledges a delivery (queued to the connection thread; never blocks). Dropped if the
    /// delivery came from an earlier connection (the broker already requeued it) or was settled.
    public func ack(_ tag: DeliveryTag) {
        settle(tag, .ack)
    }

    /// Rejects a delivery; with `requeue: false` it is dead-lettered (if the queue has a
    /// dead-letter exchange) or dropped.
    public func reject(_ tag: DeliveryTag, requeue: Bool) {
        settle(tag, .reject(requeue: requeue))
    }

    private func settle(_ tag: DeliveryTag, _ settlement: StateMachine.Settlement) {
        switch state.withLock({ $0.settle(tag, settlement) }) {
        case .wakeThread: wake.signal()
        case .queued: break
        case .dropped: logger.debug("AMQP settle dropped (stale or unknown delivery)", metadata: ["amqp.deliveryTag": "\(tag)"])
        }
    }

    private func requestShutdown() {
        let (waiters, wakeThread) = state.withLock { $0.beginShutdown() }
        for waiter in waiters { waiter.resume(returning: nil) }
        if wakeThread { wake.signal() }
    }

    // MARK: - Connection thread

    private var isShuttingDown: Bool {
        state.withLock { $0.lifecycle == .shuttingDown || $0.lifecycle == .finished }
    }

    private func connectionThread() {
        var rotation = options.makeRotation(endpoints)
        var attempt = 0
        while !isShuttingDown {
            attempt += 1
            let endpoint = rotation.current
            do throws(BrokerError) {
                let connection = try AMQPConnection(options.connectionSettings(endpoint: endpoint, role: "consumer \(queue)"))
                let consumerTag: String
                do throws(BrokerError) {
                    try connection.openChannel()
                    try connection.declare(topology)
                    try connection.qos(prefetch: prefetch)
                    consumerTag = try connection.consume(queue: queue)
                } catch {
                    if error.code == .channelClosed { connection.close() } else { connection.abandon() }
                    throw error
                }
                let generation = state.withLock { $0.connected() }
                logger.info("AMQP consumer connected", metadata: [
                    "amqp.endpoint": "\(endpoint)", "amqp.attempt": "\(attempt)", "amqp.generation": "\(generation)", "amqp.prefetch": "\(prefetch)",
                ])
                rotation.connected()
                attempt = 0

                let end = serve(connection, generation: generation, consumerTag: consumerTag)
                state.withLock { $0.connectionLost() }
                switch end {
                case .shutdown:
                    logger.info("AMQP consumer closed")
                case .failed(let error):
                    if error.code == .channelClosed { connection.close() } else { connection.abandon() }
                    logger.info("AMQP consumer connection lost", metadata: ["amqp.endpoint": "\(endpoint)", "error": "\(error)"])
                }
            } catch {
                state.withLock { $0.connectionLost() }
                let level: Logger.Level = attempt == 1 || attempt % 10 == 0 ? .info : .debug
                logger.log(level: level, "AMQP consumer cannot connect", metadata: [
                    "amqp.endpoint": "\(endpoint)", "error": "\(error)", "amqp.attempt": "\(attempt)",
                ])
            }
            if isShuttingDown { break }
            guard sleepBeforeReconnect(rotation.failed()) else { break }
        }
        for waiter in state.withLock({ $0.finish() }) {
            waiter.resume(returning: nil)
        }
    }

    private func sleepBeforeReconnect(_ delay: Duration) -> Bool {
        let deadline = ContinuousClock.now + delay
        while true {
            if isShuttingDown { return false }
            let milliseconds = deadline.millisecondsFromNow(cap: 1000)
            if milliseconds == 0 { return true }
            _ = wake.wait(socket: -1, timeoutMilliseconds: milliseconds)
        }
    }

    private enum ServeEnd {
        case shutdown
        case failed(BrokerError)
    }

    private func serve(_ connection: AMQPConnection, generation: UInt64, consumerTag: String) -> ServeEnd {
        let socket = connection.socketDescriptor
        let heartbeat = connection.heartbeatSeconds
        let idleCap: Int32 = heartbeat > 0 ? Int32(min(1000, heartbeat * 500)) : 1000
        var drainDeadline: ContinuousClock.Instant?

        while true {
            let work = state.withLock { $0.takeWork() }
            do throws(BrokerError) {
                // 1. Settles queued by tasks.
                for command in work.commands {
                    switch command {
                    case .ack(let tag): try connection.ack(tag)
                    case .ackThrough(let tag): try connection.ack(tag, multiple: true)
                    case .reject(let tag, let requeue): try connection.reject(tag, requeue: requeue)
                    }
                }
                // 2. First round of shutdown: stop the flow of new deliveries.
                if work.isShuttingDown, drainDeadline == nil {
                    drainDeadline = ContinuousClock.now + options.shutdownGracePeriod
                    try connection.cancel(consumerTag: consumerTag)
                }
            } catch {
                return .failed(error)
            }

            // 3. Read deliveries (and anything else) without blocking.
            var sawFrames = false
            do throws(BrokerError) {
                reading: while true {
                    switch try connection.nextEvent() {
                    case .timeout:
                        break reading
                    case .deliver(let tag, let redelivered, let exchange, let routingKey):
                        let content = try connection.readContent()
                        let message = IncomingMessage(
                            deliveryTag: DeliveryTag(value: tag, generation: generation),
                            body: content.body, exchange: exchange, routingKey: routingKey,
                            redelivered: redelivered, messageID: content.messageID, headers: content.headers
                        )
                        switch state.withLock({ $0.delivered(message) }) {
                        case .resume(let waiter, let message): waiter.resume(returning: message)
                        case .buffered: break
                        case .reject: try connection.reject(tag, requeue: true)
                        }
                    case .returned:
                        _ = try connection.readContent()
                    case .channelClosed(let error), .connectionClosed(let error):
                        return .failed(error)
                    case .consumerCancelled:
                        return .failed(BrokerError(code: .channelClosed, message: "the broker cancelled the consumer (queue '\(queue)' deleted?)", isRetriable: true))
                    case .ack, .nack, .other:
                        break
                    }
                    sawFrames = true
                }
            } catch {
                return .failed(error)
            }
            connection.releaseBuffers()

            // 4. Shutdown completes once every handed-out delivery is settled, or at the deadline.
            if let deadline = drainDeadline {
                if work.isDrained {
                    connection.close()
                    return .shutdown
                }
                if ContinuousClock.now >= deadline {
                    logger.info("AMQP consumer closing with unacked deliveries (they will be redelivered)",
                                metadata: ["amqp.unacked": "\(state.withLock { $0.unsettled.count })"])
                    connection.close()
                    return .shutdown
                }
            }

            // 5. Idle: sleep until the socket is readable or a task queued a settle.
            if work.commands.isEmpty && !sawFrames {
                let timeout = drainDeadline.map { $0.millisecondsFromNow(cap: idleCap) } ?? idleCap
                if wake.wait(socket: socket, timeoutMilliseconds: timeout).failed {
                    return .failed(.connectionLost("poll() on the AMQP socket failed"))
                }
            }
        }
    }
}
