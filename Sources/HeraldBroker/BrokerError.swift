/// An error from the RabbitMQ wrapper. Match on `code`; never on `message`.
public struct BrokerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as an open set of values (new codes can be added without breaking callers).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case connectionFailed, loginFailed, channelClosed, connectionClosed
            case publishNacked, publishReturned, protocolError, timeout, shutdown, invalidURL
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The TCP connection could not be opened (broker down, DNS, refused, connect timeout).
        public static let connectionFailed = Code(.connectionFailed)
        /// The broker refused the login (credentials, virtual host) or closed the socket during the handshake.
        public static let loginFailed = Code(.loginFailed)
        /// The broker closed the channel (e.g. publishing to a missing exchange, declaring with different arguments).
        public static let channelClosed = Code(.channelClosed)
        /// The connection was lost or closed before the operation completed.
        public static let connectionClosed = Code(.connectionClosed)
        /// The broker answered a publish with `basic.nack`.
        public static let publishNacked = Code(.publishNacked)
        /// The broker returned an unroutable message. Reserved: `BrokerPublisher` does not set `mandatory`.
        public static let publishReturned = Code(.publishReturned)
        /// Unexpected frame or library state.
        public static let protocolError = Code(.protocolError)
        /// A broker RPC or the heartbeat timed out.
        public static let timeout = Code(.timeout)
        /// The publisher / consumer was shut down (or is shutting down).
        public static let shutdown = Code(.shutdown)
        /// The AMQP URL could not be parsed.
        public static let invalidURL = Code(.invalidURL)

        public var description: String {
            switch backing {
            case .connectionFailed: "connectionFailed"
            case .loginFailed: "loginFailed"
            case .channelClosed: "channelClosed"
            case .connectionClosed: "connectionClosed"
            case .publishNacked: "publishNacked"
            case .publishReturned: "publishReturned"
            case .protocolError: "protocolError"
            case .timeout: "timeout"
            case .shutdown: "shutdown"
            case .invalidURL: "invalidURL"
            }
        }
    }

    public var code: Code
    public var message: String
    /// `true` when trying the same operation again later may succeed (the broker was unreachable,
    /// the connection dropped before a confirm, ...). Publishing is at-least-once: a retried
    /// publish may duplicate a message that did reach the broker.
    public var isRetriable: Bool

    public init(code: Code, message: String, isRetriable: Bool) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
    }

    public var description: String {
        "BrokerError(\(code)\(isRetriable ? ", retriable" : "")): \(message)"
    }
}

extension BrokerError {
    static func shutdown(_ message: String = "the broker client is shut down") -> BrokerError {
        BrokerError(code: .shutdown, message: message, isRetriable: false)
    }

    static func connectionLost(_ message: String) -> BrokerError {
        BrokerError(code: .connectionClosed, message: message, isRetriable: true)
    }
}
