/// A value in an AMQP field table (message headers, queue arguments).
/// Received headers of other kinds (nested tables, arrays, floats, timestamps — e.g. RabbitMQ's
/// `x-death`) are left out of `IncomingMessage.headers`.
public enum AMQPFieldValue: Sendable, Hashable {
    case string(String)
    case int(Int64)
    case bool(Bool)
}

/// An exchange to declare (never auto-deleted, never internal).
public struct ExchangeDeclaration: Sendable, Hashable {
    public var name: String
    /// `"direct"`, `"fanout"`, `"topic"` or `"headers"`. Default `"direct"`.
    public var type: String
    /// Default `true`.
    public var durable: Bool

    public init(name: String, type: String = "direct", durable: Bool = true) {
        self.name = name
        self.type = type
        self.durable = durable
    }
}

/// A queue to declare (never exclusive, never auto-deleted).
public struct QueueDeclaration: Sendable, Hashable {
    public var name: String
    /// Default `true`.
    public var durable: Bool
    /// e.g. `x-message-ttl` (`.int` milliseconds), `x-dead-letter-exchange`,
    /// `x-dead-letter-routing-key`, `x-queue-type` (`.string("quorum")`), `x-delivery-limit`.
    /// Integers are sent as signed 64-bit values, which RabbitMQ accepts for all of these.
    public var arguments: [String: AMQPFieldValue]

    public init(name: String, durable: Bool = true, arguments: [String: AMQPFieldValue] = [:]) {
        self.name = name
        self.durable = durable
        self.arguments = arguments
    }
}

/// Binds `queue` to `exchange` with `routingKey`.
public struct QueueBinding: Sendable, Hashable {
    public var queue: String
    public var exchange: String
    public var routingKey: String

    public init(queue: String, exchange: String, routingKey: String) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
    }
}

/// Exchanges, queues and bindings, declared in that order.
public struct Topology: Sendable, Hashable {
    public var exchanges: [ExchangeDeclaration]
    public var queues: [QueueDeclaration]
    public var bindings: [QueueBinding]

    public init(exchanges: [ExchangeDeclaration] = [], queues: [QueueDeclaration] = [], bindings: [QueueBinding] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }

    public var isEmpty: Bool { exchanges.isEmpty && queues.isEmpty && bindings.isEmpty }

    /// Adds the declarations of `other` that are not in `self` yet (keeping order).
    public mutating func merge(_ other: Topology) {
        for e in other.exchanges where !exchanges.contains(e) { exchanges.append(e) }
        for q in other.queues where !queues.contains(q) { queues.append(q) }
        for b in other.bindings where !bindings.contains(b) { bindings.append(b) }
    }
}

/// A message to publish.
public struct OutgoingMessage: Sendable, Hashable {
    /// `""` is the default exchange (routing key = queue name).
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    /// delivery-mode 2 when `true` (default).
    public var persistent: Bool
    public var messageID: String?
    /// Default `"application/json"`.
    public var contentType: String?
    public var headers: [String: AMQPFieldValue]

    public init(
        exchange: String,
        routingKey: String,
        body: [UInt8],
        persistent: Bool = true,
        messageID: String? = nil,
        contentType: String? = "application/json",
        headers: [String: AMQPFieldValue] = [:]
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.persistent = persistent
        self.messageID = messageID
        self.contentType = contentType
        self.headers = headers
    }
}

/// Identifies a delivery for `ack` / `reject`: the AMQP delivery tag plus the connection generation
/// it was received on. After a reconnect the broker has already requeued every unacked delivery of
/// the old connection, and the new connection reuses small tag numbers, so a settle for an older
/// generation is dropped instead of acking the wrong message.
public struct DeliveryTag: Sendable, Hashable, CustomStringConvertible {
    /// The broker's delivery tag on its channel.
    public let value: UInt64
    /// Which connection (counting from 1 per consumer) delivered it.
    public let generation: UInt64

    public init(value: UInt64, generation: UInt64) {
        self.value = value
        self.generation = generation
    }

    public var description: String { "\(generation):\(value)" }
}

/// A message received by `BrokerConsumer`.
public struct IncomingMessage: Sendable {
    public let deliveryTag: DeliveryTag
    public let body: [UInt8]
    public let exchange: String
    public let routingKey: String
    /// `true` if the broker delivered it before (to this or another consumer) without an ack.
    public let redelivered: Bool
    public let messageID: String?
    /// String, integer and boolean headers (others are left out).
    public let headers: [String: AMQPFieldValue]

    public init(
        deliveryTag: DeliveryTag,
        body: [UInt8],
        exchange: String,
        routingKey: String,
        redelivered: Bool,
        messageID: String?,
        headers: [String: AMQPFieldValue]
    ) {
        self.deliveryTag = deliveryTag
        self.body = body
        self.exchange = exchange
        self.routingKey = routingKey
        self.redelivered = redelivered
        self.messageID = messageID
        self.headers = headers
    }
}
