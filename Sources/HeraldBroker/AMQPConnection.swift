internal import CRabbitMQShim

/// One rabbitmq-c connection with one channel. Thread-confined: it is created, used and destroyed
/// on the connection thread of a `BrokerPublisher` / `BrokerConsumer` (rabbitmq-c forbids sharing a
/// connection across threads). It is deliberately not `Sendable`, so the compiler refuses to let it
/// escape into a task or another thread.
final class AMQPConnection {
    struct Settings {
        var endpoint: AMQPEndpoint
        var connectionName: String
        /// TCP connect + AMQP handshake bound. Default 10 s.
        var connectTimeoutMilliseconds: Int32 = 10_000
        /// Bound for declarations and other RPCs. Default 30 s.
        var rpcTimeoutMilliseconds: Int32 = 30_000
    }

    enum Event {
        case timeout
        case ack(tag: UInt64, multiple: Bool)
        case nack(tag: UInt64, multiple: Bool)
        case deliver(tag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
        case returned(code: UInt16, text: String)
        case channelClosed(BrokerError)
        case connectionClosed(BrokerError)
        case consumerCancelled
        case other
    }

    static let channel: UInt16 = 1

    private let state: amqp_connection_state_t
    private var channelOpen = false
    private var closed = false

    /// Connects and logs in (blocking; call on the connection thread only).
    init(_ settings: Settings) throws(BrokerError) {
        guard let state = amqp_new_connection() else {
            throw BrokerError(code: .connectionFailed, message: "amqp_new_connection failed (out of memory)", isRetriable: true)
        }
        self.state = state
        let e = settings.endpoint
        let info = herald_connect(
            state, e.host, Int32(clamping: e.port), settings.connectTimeoutMilliseconds,
            settings.rpcTimeoutMilliseconds, e.virtualHost, Int32(clamping: e.heartbeatSeconds),
            e.username, e.password, settings.connectionName
        )
        if info.kind != HERALD_REPLY_OK {
            closed = true  // nothing to close politely; deinit destroys
            throw Self.connectError(info, endpoint: e)
        }
    }

    deinit {
        if !closed { herald_close(state, channelOpen ? Self.channel : 0) }
        amqp_destroy_connection(state)
    }

    /// Socket descriptor to poll for readability.
    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Negotiated heartbeat in seconds (0 = off).
    var heartbeatSeconds: Int { Int(amqp_get_heartbeat(state)) }

    func openChannel() throws(BrokerError) {
        try check(herald_channel_open(state, Self.channel), "channel.open")
        channelOpen = true
    }

    func confirmSelect() throws(BrokerError) {
        try check(herald_confirm_select(state, Self.channel), "confirm.select")
    }

    func declare(_ topology: Topology) throws(BrokerError) {
        for exchange in topology.exchanges {
            try check(herald_exchange_declare(state, Self.channel, exchange.name, exchange.type, exchange.durable ? 1 : 0),
                      "exchange.declare '\(exchange.name)'")
        }
        for queue in topology.queues {
            let info = withFieldTable(queue.arguments) { table in
                herald_queue_declare(state, Self.channel, queue.name, queue.durable ? 1 : 0, table)
            }
            try check(info, "queue.declare '\(queue.name)'")
        }
        for binding in topology.bindings {
            try check(herald_queue_bind(state, Self.channel, binding.queue, binding.exchange, binding.routingKey),
                      "queue.bind '\(binding.queue)' to '\(binding.exchange)' with '\(binding.routingKey)'")
        }
    }

    /// A passive queue.declare: how many messages are ready in `queue` and how many consumers it
    /// has. A missing queue closes the channel (404: `channelClosed`, not retriable).
    func inspect(queue: String) throws(BrokerError) -> QueueDepth {
        var messages: UInt32 = 0
        var consumers: UInt32 = 0
        try check(herald_queue_inspect(state, Self.channel, queue, &messages, &consumers), "queue.declare (passive) '\(queue)'")
        return QueueDepth(messagesReady: Int(messages), consumers: Int(consumers))
    }

    func qos(prefetch: UInt16) throws(BrokerError) {
        try check(herald_basic_qos(state, Self.channel, prefetch), "basic.qos")
    }

    /// Starts a manual-ack consumer; returns the consumer tag.
    func consume(queue: String) throws(BrokerError) -> String {
        var tag = [CChar](repeating: 0, count: 256)
        let info = herald_basic_consume(state, Self.channel, queue, &tag, tag.count)
        try check(info, "basic.consume '\(queue)'")
        return String(decoding: tag.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func cancel(consumerTag: String) throws(BrokerError) {
        try check(herald_basic_cancel(state, Self.channel, consumerTag), "basic.cancel")
    }

    func publish(_ message: OutgoingMessage) throws(BrokerError) {
        let status: Int32 = withFieldTable(message.headers) { headers in
            withOptionalCString(message.contentType) { contentType in
                withOptionalCString(message.messageID) { messageID in
                    message.body.withUnsafeBytes { body in
                        herald_basic_publish(
                            state, Self.channel, message.exchange, message.routingKey,
                            message.persistent ? 1 : 0, contentType, messageID, headers,
                            body.baseAddress, body.count
                        )
                    }
                }
            }
        }
        if status != AMQP_STATUS_OK.rawValue {
            throw Self.libraryError(status, "basic.publish")
        }
    }

    /// `multiple`: every unacked delivery up to and including `tag`.
    func ack(_ tag: UInt64, multiple: Bool = false) throws(BrokerError) {
        let status = amqp_basic_ack(state, Self.channel, tag, multiple ? 1 : 0)
        if status != AMQP_STATUS_OK.rawValue { throw Self.libraryError(status, "basic.ack") }
    }

    func reject(_ tag: UInt64, requeue: Bool) throws(BrokerError) {
        let status = amqp_basic_reject(state, Self.channel, tag, requeue ? 1 : 0)
        if status != AMQP_STATUS_OK.rawValue { throw Self.libraryError(status, "basic.reject") }
    }

    /// Reads at most one frame, waiting up to `timeoutMicroseconds` (0: only what's already there).
    /// Also sends heartbeats when due and notices a silent broker.
    func nextEvent(timeoutMicroseconds: Int = 0) throws(BrokerError) -> Event {
        var event = herald_event()
        let status = herald_next_event(state, timeoutMicroseconds, &event)
        if status != AMQP_STATUS_OK.rawValue {
            throw Self.libraryError(status, "reading from the broker")
        }
        switch event.kind {
        case HERALD_EVENT_TIMEOUT: return .timeout
        case HERALD_EVENT_ACK: return .ack(tag: event.delivery_tag, multiple: event.multiple != 0)
        case HERALD_EVENT_NACK: return .nack(tag: event.delivery_tag, multiple: event.multiple != 0)
        case HERALD_EVENT_DELIVER:
            return .deliver(tag: event.delivery_tag, redelivered: event.redelivered != 0,
                            exchange: Self.string(event.exchange), routingKey: Self.string(event.routing_key))
        case HERALD_EVENT_RETURN:
            return .returned(code: event.reply_code, text: Self.string(event.reply_text))
        case HERALD_EVENT_CHANNEL_CLOSE:
            channelOpen = false
            return .channelClosed(Self.closeError(.channelClosed, code: event.reply_code, text: Self.string(event.reply_text), what: "channel"))
        case HERALD_EVENT_CONNECTION_CLOSE:
            channelOpen = false
            closed = true
            return .connectionClosed(Self.closeError(.connectionClosed, code: event.reply_code, text: Self.string(event.reply_text), what: "connection"))
        case HERALD_EVENT_CONSUMER_CANCELLED: return .consumerCancelled
        default: return .other
        }
    }

    /// Reads the content (header + body frames) that follows a `.deliver` / `.returned` event.
    func readContent() throws(BrokerError) -> (body: [UInt8], messageID: String?, headers: [String: AMQPFieldValue]) {
        var content = herald_content()
        let info = herald_read_content(state, Self.channel, &content)
        try check(info, "reading message content")
        defer { herald_content_destroy(&content) }
        let body = Self.bytes(content.body)
        let messageID = content.has_message_id != 0 ? Self.string(content.message_id) : nil
        var headers: [String: AMQPFieldValue] = [:]
        if let table = content.headers {
            for index in 0..<table.pointee.num_entries {
                var key = amqp_bytes_t()
                var text = amqp_bytes_t()
                var int: Int64 = 0
                var bool: Int32 = 0
                switch herald_table_entry(table, index, &key, &text, &int, &bool) {
                case HERALD_FIELD_STRING: headers[Self.string(key)] = .string(Self.string(text))
                case HERALD_FIELD_INT: headers[Self.string(key)] = .int(int)
                case HERALD_FIELD_BOOL: headers[Self.string(key)] = .bool(bool != 0)
                default: continue
                }
            }
        }
        return (body, messageID, headers)
    }

    /// Frees frame memory once nothing references it (call after handling a round of events).
    func releaseBuffers() {
        amqp_maybe_release_buffers(state)
    }

    /// Polite close: channel.close + connection.close (bounded by the RPC timeout).
    func close() {
        guard !closed else { return }
        closed = true
        herald_close(state, channelOpen ? Self.channel : 0)
        channelOpen = false
    }

    /// Marks the connection as unusable (no polite close will be attempted).
    func abandon() {
        closed = true
    }

    // MARK: - Helpers

    private func check(_ info: herald_reply_info, _ what: @autoclosure () -> String) throws(BrokerError) {
        guard info.kind != HERALD_REPLY_OK else { return }
        let text = Self.text(info)
        switch info.kind {
        case HERALD_REPLY_CHANNEL_CLOSE:
            channelOpen = false
            throw Self.closeError(.channelClosed, code: info.reply_code, text: text, what: "channel", during: what())
        case HERALD_REPLY_CONNECTION_CLOSE:
            channelOpen = false
            closed = true
            throw Self.closeError(.connectionClosed, code: info.reply_code, text: text, what: "connection", during: what())
        case HERALD_REPLY_LIBRARY_ERROR:
            throw Self.libraryError(info.library_error, what(), text: text)
        default:
            throw BrokerError(code: .protocolError, message: "\(what()): \(text)", isRetriable: true)
        }
    }

    private static func closeError(_ code: BrokerError.Code, code replyCode: UInt16, text: String, what: String, during: String? = nil) -> BrokerError {
        // 403 access-refused, 404 not-found, 406 precondition-failed, 530 not-allowed, 540
        // not-implemented: doing the same thing again fails the same way.
        let permanent: Set<UInt16> = [403, 404, 406, 530, 540]
        let prefix = during.map { "\($0): " } ?? ""
        return BrokerError(code: code, message: "\(prefix)broker closed the \(what): \(replyCode) \(text)",
                           isRetriable: !permanent.contains(replyCode))
    }

    private static func libraryError(_ status: Int32, _ what: String, text: String? = nil) -> BrokerError {
        let description = text ?? String(cString: amqp_error_string2(status))
        switch status {
        case AMQP_STATUS_TIMEOUT.rawValue, AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue:
            return BrokerError(code: .timeout, message: "\(what): \(description)", isRetriable: true)
        default:
            return BrokerError(code: .connectionClosed, message: "\(what): \(description)", isRetriable: true)
        }
    }

    private static func connectError(_ info: herald_reply_info, endpoint: AMQPEndpoint) -> BrokerError {
        let text = text(info)
        if info.stage == HERALD_STAGE_SOCKET {
            return BrokerError(code: .connectionFailed, message: "cannot connect to \(endpoint): \(text)", isRetriable: true)
        }
        switch info.kind {
        case HERALD_REPLY_CONNECTION_CLOSE, HERALD_REPLY_CHANNEL_CLOSE:
            return BrokerError(code: .loginFailed, message: "login to \(endpoint) refused: \(info.reply_code) \(text)",
                               isRetriable: false)
        case HERALD_REPLY_LIBRARY_ERROR:
            if info.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue
                || info.library_error == AMQP_STATUS_SOCKET_CLOSED.rawValue {
                return BrokerError(code: .loginFailed,
                                   message: "\(endpoint) closed the connection during login (wrong credentials or virtual host?): \(text)",
                                   isRetriable: false)
            }
            if info.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                return BrokerError(code: .timeout, message: "login to \(endpoint) timed out", isRetriable: true)
            }
            return BrokerError(code: .connectionFailed, message: "login to \(endpoint) failed: \(text)", isRetriable: true)
        default:
            return BrokerError(code: .protocolError, message: "login to \(endpoint): \(text)", isRetriable: true)
        }
    }

    private static func text(_ info: herald_reply_info) -> String {
        withUnsafeBytes(of: info.reply_text) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func bytes(_ b: amqp_bytes_t) -> [UInt8] {
        guard b.len > 0, let base = b.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: b.len))
    }

    private static func string(_ b: amqp_bytes_t) -> String {
        guard b.len > 0, let base = b.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: base, count: b.len), as: UTF8.self)
    }
}

@available(*, unavailable, message: "rabbitmq-c connections are confined to their thread")
extension AMQPConnection: Sendable {}

/// Builds an owned C field table for the duration of `body` (nil when `fields` is empty).
private func withFieldTable<R>(_ fields: [String: AMQPFieldValue], _ body: (OpaquePointer?) -> R) -> R {
    guard !fields.isEmpty, let table = herald_table_create(fields.count) else { return body(nil) }
    defer { herald_table_destroy(table) }
    for key in fields.keys.sorted() {
        switch fields[key]! {
        case .string(let value): _ = herald_table_add_string(table, key, value)
        case .int(let value): _ = herald_table_add_int(table, key, value)
        case .bool(let value): _ = herald_table_add_bool(table, key, value ? 1 : 0)
        }
    }
    return body(table)
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
