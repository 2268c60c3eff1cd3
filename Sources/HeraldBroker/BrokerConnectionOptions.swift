/// Tuning shared by `BrokerPublisher` and `BrokerConsumer`. Every default is written next to it.
public struct BrokerConnectionOptions: Sendable, Hashable {
    /// Shown in the RabbitMQ management UI (`connection_name` client property). Default: `"herald"`.
    public var connectionName: String
    /// TCP connect + AMQP handshake bound. Default 10 s.
    public var connectTimeout: Duration
    /// Bound for declarations and other broker RPCs. Default 30 s.
    public var rpcTimeout: Duration
    /// First delay before reconnecting. Default 100 ms; doubles per failed attempt (with several
    /// endpoints: per round in which every one failed; the next node is tried at once).
    public var reconnectInitialDelay: Duration
    /// Cap of the reconnect delay. Default 10 s.
    public var reconnectMaximumDelay: Duration
    /// On graceful shutdown, how long the publisher waits for outstanding confirms / the consumer
    /// waits for handed-out messages to be acked before closing anyway. Default 10 s.
    public var shutdownGracePeriod: Duration

    public init(
        connectionName: String = "herald",
        connectTimeout: Duration = .seconds(10),
        rpcTimeout: Duration = .seconds(30),
        reconnectInitialDelay: Duration = .milliseconds(100),
        reconnectMaximumDelay: Duration = .seconds(10),
        shutdownGracePeriod: Duration = .seconds(10)
    ) {
        self.connectionName = connectionName
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.reconnectInitialDelay = reconnectInitialDelay
        self.reconnectMaximumDelay = reconnectMaximumDelay
        self.shutdownGracePeriod = shutdownGracePeriod
    }

    func connectionSettings(endpoint: AMQPEndpoint, role: String) -> AMQPConnection.Settings {
        AMQPConnection.Settings(
            endpoint: endpoint,
            connectionName: "\(connectionName) (\(role))",
            connectTimeoutMilliseconds: Self.milliseconds(connectTimeout),
            rpcTimeoutMilliseconds: Self.milliseconds(rpcTimeout)
        )
    }

    func makeBackoff() -> ReconnectBackoff {
        ReconnectBackoff(initial: reconnectInitialDelay, maximum: reconnectMaximumDelay)
    }

    func makeRotation(_ endpoints: [AMQPEndpoint]) -> EndpointRotation {
        EndpointRotation(endpoints: endpoints, backoff: makeBackoff())
    }

    static func milliseconds(_ d: Duration) -> Int32 {
        Int32(clamping: Int64((ReconnectBackoff.seconds(d) * 1000).rounded(.up)))
    }
}

extension ContinuousClock.Instant {
    /// Milliseconds from now until `self`, clamped to `0...cap`.
    func millisecondsFromNow(cap: Int32) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: self)
        if remaining <= .zero { return 0 }
        return min(cap, BrokerConnectionOptions.milliseconds(remaining))
    }
}
