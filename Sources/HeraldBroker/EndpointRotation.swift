/// Which broker node to connect to next, and after how long. Pure value type, used by the
/// publisher's and the consumer's connection threads.
///
/// The nodes of one RabbitMQ cluster are tried in turn: a connection that fails or is lost moves
/// on to the next node at once, so a client whose node was stopped reconnects to a survivor
/// without waiting. Only when every node failed in a row does the next try wait, with the capped
/// exponential `ReconnectBackoff` growing once per full round. With one endpoint this is exactly
/// that backoff (every failure waits and grows).
///
/// Each process starts at its own node (`startIndex`, random by default) so that the clients of
/// a cluster spread over its nodes instead of all landing on the first one.
struct EndpointRotation: Sendable {
    let endpoints: [AMQPEndpoint]
    private(set) var index: Int
    private var backoff: ReconnectBackoff
    /// Failures since the last successful connection.
    private(set) var consecutiveFailures = 0

    /// - Precondition: `endpoints` is not empty.
    init(endpoints: [AMQPEndpoint], startIndex: Int? = nil, backoff: ReconnectBackoff) {
        precondition(!endpoints.isEmpty, "EndpointRotation needs at least one endpoint")
        self.endpoints = endpoints
        self.index = (startIndex ?? Int.random(in: 0..<endpoints.count)) % endpoints.count
        self.backoff = backoff
    }

    /// The node the next connection attempt goes to.
    var current: AMQPEndpoint { endpoints[index] }

    /// A connection to `current` is up: stay on this node, start the next failure round afresh.
    mutating func connected() {
        consecutiveFailures = 0
        backoff.reset()
    }

    /// Connecting to `current` failed, or its connection was lost: moves to the next node and
    /// returns how long to wait before trying it (zero inside a round, the backoff after a round
    /// in which every node failed).
    mutating func failed<R: RandomNumberGenerator>(using rng: inout R) -> Duration {
        consecutiveFailures += 1
        index = (index + 1) % endpoints.count
        return consecutiveFailures % endpoints.count == 0 ? backoff.nextDelay(using: &rng) : .zero
    }

    mutating func failed() -> Duration {
        var rng = SystemRandomNumberGenerator()
        return failed(using: &rng)
    }
}
