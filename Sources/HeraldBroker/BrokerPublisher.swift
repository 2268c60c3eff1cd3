public import Logging
public import ServiceLifecycle
import Synchronization

/// One AMQP connection (on its own thread) with one channel in publisher-confirm mode.
///
/// `run()` connects (retrying with capped exponential backoff while the broker is unreachable),
/// declares the topology, serves until graceful shutdown or cancellation, then closes cleanly:
/// commands already queued are still written and outstanding confirms are awaited for up to
/// `BrokerConnectionOptions.shutdownGracePeriod`.
///
/// `publish` calls from any number of tasks pipeline on the single channel: they're queued, the
/// connection thread writes them back to back and matches the broker's confirm stream
/// (`basic.ack` / `basic.nack`, single or `multiple`) to the batches. A call made before the
/// connection is up (or while reconnecting) waits for it.
public final class BrokerPublisher: Service, Sendable {
    typealias Waiter = CheckedContinuation<Void, any Error>
    private typealias StateMachine = PublisherStateMachine<Waiter>

    private let endpoints: [AMQPEndpoint]
    private let options: BrokerConnectionOptions
    private let logger: Logger
    private let state: Mutex<StateMachine>
    private let wake = WakeSignal()

    /// - Parameters:
    ///   - topology: declared on every (re)connect, before any publish is written.
    ///   - logger: used for connection events (info) and details (debug); never bootstrapped here.
    public convenience init(endpoint: AMQPEndpoint, topology: Topology = .init(), logger: Logger) {
        self.init(endpoint: endpoint, topology: topology, options: .init(), logger: logger)
    }

    public convenience init(endpoint: AMQPEndpoint, topology: Topology = .init(), options: BrokerConnectionOptions, logger: Logger) {
        self.init(endpoints: [endpoint], topology: topology, options: options, logger: logger)
    }

    /// - Parameter endpoints: the nodes of one RabbitMQ cluster, tried in turn (`EndpointRotation`):
    ///   a lost connection moves to the next node at once. Must not be empty.
    public init(endpoints: [AMQPEndpoint], topology: Topology = .init(), options: BrokerConnectionOptions = .init(), logger: Logger) {
        precondition(!endpoints.isEmpty, "BrokerPublisher needs at least one endpoint")
        self.endpoints = endpoints
        self.options = options
        var logger = logger
        logger[metadataKey: "amqp.role"] = "publisher"
        self.logger = logger
        self.state = Mutex(StateMachine(topology: topology))
    }

    /// `true` while a connection is up with its topology declared.
    public var isConnected: Bool {
        state.withLock { $0.isConnected }
    }

    public func run() async throws {
        guard state.withLock({ $0.start() }) else {
            if state.withLock({ $0.lifecycle == .finished }) { return }
            throw BrokerError(code: .protocolError, message: "BrokerPublisher.run() called twice", isRetriable: false)
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await DedicatedThread.run(name: "amqp-publisher") { self.connectionThread() }
            } onCancel: {
                self.requestShutdown()
            }
        } onGracefulShutdown: {
            self.requestShutdown()
        }
    }

    /// Declares more topology now (waits for the connection) and adds it to what is re-declared
    /// on every reconnect. Throws the broker's error if the declaration is refused (e.g.
    /// `channelClosed` 406 for a queue that exists with other arguments); it is then not kept.
    public func declare(_ topology: Topology) async throws {
        guard !topology.isEmpty else { return }
        try await submit { id in .declare(id: id, topology: topology) }
    }

    /// Publishes all messages and returns once the broker confirmed every one.
    ///
    /// Throws `publishNacked` if the broker nacked any of them, `connectionClosed` /
    /// `channelClosed` if the connection or channel went away before every confirm arrived (some
    /// may have been stored: retrying is at-least-once), `shutdown` after shutdown began, and
    /// `CancellationError` if the calling task is cancelled (messages not yet written are withdrawn).
    public func publish(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await submit { id in .publish(id: id, messages: messages) }
    }

    private func submit(_ makeCommand: (UInt64) -> StateMachine.Command) async throws {
        let id = state.withLock { $0.makeID() }
        let command = makeCommand(id)
        defer {
            if Task.isCancelled { state.withLock { $0.clearCancelled(id: id) } }
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                let action = state.withLock { $0.submit(command, waiter: continuation) }
                switch action {
                case .wakeThread: wake.signal()
                case .none: break
                case .fail(let error): continuation.resume(throwing: error)
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            if let waiter = state.withLock({ $0.cancel(id: id) }) {
                waiter.resume(throwing: CancellationError())
            }
        }
    }

    private func requestShutdown() {
        switch state.withLock({ $0.beginShutdown() }) {
        case .wakeThread:
            wake.signal()
        case .failWaiters(let waiters):
            for waiter in waiters { waiter.resume(throwing: BrokerError.shutdown()) }
        case .none:
            break
        }
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
                let connection = try AMQPConnection(options.connectionSettings(endpoint: endpoint, role: "publisher"))
                do throws(BrokerError) {
                    try connection.openChannel()
                    try connection.confirmSelect()
                    try connection.declare(state.withLock { $0.topology })
                } catch {
                    if error.code == .channelClosed { connection.close() } else { connection.abandon() }
                    throw error
                }
                state.withLock { $0.connected() }
                logger.info("AMQP publisher connected", metadata: [
                    "amqp.endpoint": "\(endpoint)", "amqp.attempt": "\(attempt)", "amqp.heartbeat": "\(connection.heartbeatSeconds)",
                ])
                rotation.connected()
                attempt = 0

                var tracker = ConfirmTracker()
                let end = serve(connection, tracker: &tracker)
                state.withLock { $0.disconnected() }
                switch end {
                case .shutdown:
                    logger.info("AMQP publisher closed")
                case .failed(let error):
                    if error.code == .channelClosed { connection.close() } else { connection.abandon() }
                    let lost = tracker.connectionLost()
                    // Retriable even for a "permanent" channel error: the batches in flight can't be told
                    // apart from the one that caused it; the message carries the broker's reason.
                    failBatches(lost, with: BrokerError(
                        code: error.code == .channelClosed ? .channelClosed : .connectionClosed,
                        message: "connection lost before the broker confirmed the publish: \(error.message)",
                        isRetriable: true
                    ))
                    logger.info("AMQP publisher connection lost", metadata: [
                        "amqp.endpoint": "\(endpoint)", "error": "\(error)", "amqp.unconfirmedBatches": "\(lost.count)",
                    ])
                }
            } catch {
                state.withLock { $0.disconnected() }
                let level: Logger.Level = attempt == 1 || attempt % 10 == 0 ? .info : .debug
                logger.log(level: level, "AMQP publisher cannot connect", metadata: [
                    "amqp.endpoint": "\(endpoint)", "error": "\(error)", "amqp.attempt": "\(attempt)",
                ])
            }
            if isShuttingDown { break }
            guard sleepBeforeReconnect(rotation.failed()) else { break }
        }
        for waiter in state.withLock({ $0.finish() }) {
            waiter.resume(throwing: BrokerError.shutdown("the publisher shut down before this was sent"))
        }
    }

    /// Waits `delay` on the connection thread; returns `false` if shutdown was requested meanwhile.
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

    private func serve(_ connection: AMQPConnection, tracker: inout ConfirmTracker) -> ServeEnd {
        let socket = connection.socketDescriptor
        let heartbeat = connection.heartbeatSeconds
        // Wake at least twice per heartbeat interval so heartbeats go out and a silent broker is noticed.
        let idleCap: Int32 = heartbeat > 0 ? Int32(min(1000, heartbeat * 500)) : 1000
        var drainDeadline: ContinuousClock.Instant?

        while true {
            let (commands, shuttingDown) = state.withLock { s in (s.takeCommands(), s.lifecycle == .shuttingDown) }

            // 1. Write everything queued.
            var index = 0
            while index < commands.count {
                let command = commands[index]
                index += 1
                switch command {
                case .publish(let id, let messages):
                    tracker.register(batch: id, count: messages.count)
                    for message in messages {
                        do throws(BrokerError) {
                            try connection.publish(message)
                        } catch {
                            state.withLock { $0.requeueFront(Array(commands[index...])) }
                            return .failed(error)
                        }
                    }
                case .declare(let id, let topology):
                    do throws(BrokerError) {
                        try connection.declare(topology)
                        state.withLock { $0.declared(topology) }
                        state.withLock { $0.complete(id: id) }?.resume()
                    } catch {
                        state.withLock { $0.complete(id: id) }?.resume(throwing: error)
                        state.withLock { $0.requeueFront(Array(commands[index...])) }
                        return .failed(error)
                    }
                }
            }

            // 2. Read whatever the broker sent (confirms), without blocking.
            var sawFrames = false
            do throws(BrokerError) {
                reading: while true {
                    switch try connection.nextEvent() {
                    case .timeout:
                        break reading
                    case .ack(let tag, let multiple):
                        complete(tracker.ack(deliveryTag: tag, multiple: multiple))
                    case .nack(let tag, let multiple):
                        complete(tracker.nack(deliveryTag: tag, multiple: multiple))
                    case .returned(let code, let text):
                        _ = try connection.readContent()
                        logger.debug("AMQP message returned", metadata: ["amqp.replyCode": "\(code)", "amqp.replyText": "\(text)"])
                    case .deliver:
                        _ = try connection.readContent()
                    case .channelClosed(let error), .connectionClosed(let error):
                        return .failed(error)
                    case .consumerCancelled, .other:
                        break
                    }
                    sawFrames = true
                }
            } catch {
                return .failed(error)
            }
            connection.releaseBuffers()

            // 3. Graceful shutdown: everything queued is written; wait for the confirms.
            if shuttingDown {
                let deadline = drainDeadline ?? ContinuousClock.now + options.shutdownGracePeriod
                drainDeadline = deadline
                if tracker.isEmpty {
                    connection.close()
                    return .shutdown
                }
                if ContinuousClock.now >= deadline {
                    let pending = tracker.connectionLost()
                    logger.info("AMQP publisher closing with unconfirmed publishes", metadata: ["amqp.unconfirmedBatches": "\(pending.count)"])
                    failBatches(pending, with: BrokerError(code: .shutdown, message: "shut down before the broker confirmed the publish", isRetriable: true))
                    connection.close()
                    return .shutdown
                }
            }

            // 4. Idle: sleep until the socket is readable or a task queues something.
            if commands.isEmpty && !sawFrames {
                let timeout = drainDeadline.map { $0.millisecondsFromNow(cap: idleCap) } ?? idleCap
                if wake.wait(socket: socket, timeoutMilliseconds: timeout).failed {
                    return .failed(.connectionLost("poll() on the AMQP socket failed"))
                }
            }
        }
    }

    private func complete(_ outcomes: [ConfirmTracker.Outcome]) {
        guard !outcomes.isEmpty else { return }
        let resumptions = state.withLock { s in
            outcomes.compactMap { outcome -> (Waiter, Bool)? in
                switch outcome {
                case .confirmed(let id): s.complete(id: id).map { ($0, true) }
                case .nacked(let id): s.complete(id: id).map { ($0, false) }
                }
            }
        }
        for (waiter, confirmed) in resumptions {
            if confirmed {
                waiter.resume()
            } else {
                waiter.resume(throwing: BrokerError(code: .publishNacked, message: "the broker nacked a message of this batch", isRetriable: true))
            }
        }
    }

    private func failBatches(_ ids: [UInt64], with error: BrokerError) {
        guard !ids.isEmpty else { return }
        let waiters = state.withLock { s in ids.compactMap { s.complete(id: $0) } }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
