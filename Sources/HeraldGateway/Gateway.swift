import Foundation
import HTTPTypes
import HeraldBroker
import HeraldConfig
import HeraldCore
import HeraldEngine
import HeraldMessaging
import HeraldStore
import Hummingbird
import Logging
import Metrics
import NIOCore
import PostgresNIO
import ServiceLifecycle

public struct GatewayConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests).
    public var port: Int = 8080
    public var postgresURL: String
    public var amqpURL: String
    /// Largest request body accepted. Default 1 MiB.
    public var maxBodySize: Int = 1 << 20
    /// Notifications per group commit. Default 256.
    public var commitBatchSize: Int = 256
    public var relay = OutboxRelay.Configuration()
    /// Connections in the PostgreSQL pool. Default 16.
    public var postgresConnections: Int = 16
    /// Longest a request waits for its notification to be stored before it is answered 503. Default 5 s.
    public var acceptDeadline: Duration = .seconds(5)
    /// Longest any other database call of a request may take. Default 5 s.
    public var queryDeadline: Duration = .seconds(5)
    /// `/readyz` fails when the oldest due outbox row has waited this long. Default 30 s.
    public var relayStallThreshold: Duration = .seconds(30)
    /// Text for `GET /metrics` (the executable plugs in its Prometheus registry).
    public var metricsExposition: (@Sendable () -> String)?

    public init(postgresURL: String, amqpURL: String) {
        self.postgresURL = postgresURL
        self.amqpURL = amqpURL
    }
}

/// The gateway's parts, for the composition root and for tests that want to look inside.
public struct GatewayComponents: Sendable {
    public let postgres: PostgresClient
    public let publisher: BrokerPublisher
    public let store: NotificationStore
    public let committer: GroupCommitter<NewNotification, AcceptOutcome>
    public let relay: OutboxRelay
}

/// Builds the gateway: HTTP API, PostgreSQL pool, group committer, outbox relay, broker publisher.
/// The returned application runs them all as services and shuts them down gracefully.
///
/// With a `loader`, SIGHUP reloads the configuration; a new channel's queues are declared before the
/// new snapshot serves requests.
public func buildGateway(
    configuration: GatewayConfiguration, config: ConfigStore, loader: ConfigLoader? = nil, logger: Logger
) throws -> (application: some ApplicationProtocol, components: GatewayComponents) {
    let registry = config.snapshot.registry
    let postgres = PostgresClient(
        configuration: try .herald(url: configuration.postgresURL, connections: configuration.postgresConnections),
        backgroundLogger: logger)
    let endpoint = try AMQPEndpoint(url: configuration.amqpURL)
    let publisher = BrokerPublisher(endpoint: endpoint, topology: DeliveryTopology.topology(for: registry), logger: logger)
    let store = NotificationStore(client: postgres, logger: logger)
    let committer = GroupCommitter<NewNotification, AcceptOutcome>(
        maxBatchSize: configuration.commitBatchSize, maxConcurrentFlushes: 3, flushDeadline: .seconds(10), logger: logger,
        isolate: StoreFailure.isCausedByData, describe: StoreFailure.describe
    ) { batch in try await store.accept(batch) }
    let relay = OutboxRelay(
        outbox: OutboxStore(client: postgres, logger: logger), publisher: publisher,
        configuration: configuration.relay, logger: logger)
    let components = GatewayComponents(
        postgres: postgres, publisher: publisher, store: store, committer: committer, relay: relay)

    var services: [any Service] = [postgres, publisher, relay, committer]
    if let loader {
        services.append(ConfigReloader(loader: loader, store: config, logger: logger, prepare: { snapshot in
            try await publisher.declare(DeliveryTopology.topology(for: snapshot.registry))
        }))
    }
    let api = NotificationAPI(
        config: config, components: components, configuration: configuration, logger: logger)
    let router = Router()
    router.add(middleware: ProblemMiddleware(logger: logger))
    api.addRoutes(to: router)

    // Shutdown runs in reverse: the HTTP server stops taking requests, the committer flushes what it
    // holds, the relay finishes its round, then the publisher and the pool close.
    let application = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Herald"),
        services: services,
        logger: logger)
    return (application, components)
}

struct NotificationAPI: Sendable {
    let config: ConfigStore
    let components: GatewayComponents
    let configuration: GatewayConfiguration
    let logger: Logger
    let accepted = Counter(label: "herald_notifications_accepted_total")
    let rejected = Counter(label: "herald_notifications_rejected_total")
    let acceptLatency = Timer(label: "herald_accept_duration_seconds")

    static let responseEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/notifications") { request, context in try await accept(request, context: context) }
        router.get("/v1/notifications/:id") { _, context in try await show(context: context) }
        router.post("/v1/notifications/:id/cancel") { _, context in try await cancel(context: context) }
        router.get("/v1/deadletters") { request, _ in try await deadLetters(request) }
        router.post("/v1/deadletters/retry") { request, _ in try await replayDeadLetters(request) }
        router.post("/v1/deliveries/:id/retry") { _, context in try await replayDelivery(context: context) }
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in try await ready() }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: configuration.metricsExposition?() ?? "")))
        }
    }

    /// A database call of a request, bounded by `queryDeadline`.
    func query<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(configuration.queryDeadline, what, body)
    }

    func readJSON(_ request: Request) async throws -> JSONValue {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxBodySize)
        } catch {
            throw ProblemDetails(
                type: ProblemDetails.base + "too-large", title: "The body is too large", status: .contentTooLarge,
                detail: "request bodies are limited to \(configuration.maxBodySize) bytes")
        }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
        } catch {
            throw ProblemDetails.malformedJSON(Self.describe(decodingError: error))
        }
    }

    func accept(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let json: JSONValue
        do {
            json = try await readJSON(request)
        } catch {
            rejected.increment()
            throw error
        }
        // One snapshot for the whole request: validation, routing and rendering agree.
        let snapshot = config.snapshot
        let now = Date()
        let notificationRequest: NotificationRequest
        switch snapshot.validator.validate(json, now: now) {
        case .success(let valid): notificationRequest = valid
        case .failure(let failure):
            rejected.increment()
            throw ProblemDetails.validation(failure.errors)
        }
        let planned: PlannedNotification
        switch DeliveryEngine.plan(notificationRequest, snapshot: snapshot, now: now) {
        case .success(let value): planned = value
        case .failure(let failure):
            rejected.increment()
            throw ProblemDetails.validation(failure.errors)
        }
        let notification = planned.notification
        let committer = components.committer
        let outcome: AcceptOutcome
        do {
            outcome = try await withDeadline(configuration.acceptDeadline, "storing the notification") {
                try await committer.submit(notification)
            }
        } catch let error where StoreFailure.isUnavailable(error) || error is GroupCommitterShutDown {
            logger.warning("notification not accepted: the database is unavailable", metadata: [
                "error": "\(StoreFailure.describe(error))",
            ])
            throw ProblemDetails.storeUnavailable()
        }
        switch outcome {
        case .stored:
            components.relay.wake()
            accepted.increment()
            acceptLatency.record(duration: ContinuousClock.now - start)
            let id = notification.id.lowercasedString
            let response = AcceptedResponse(
                id: id, status: "accepted", configVersion: snapshot.version, rule: planned.plan.rule,
                strategy: planned.plan.strategy.rawValue,
                deliveries: notification.deliveries.map {
                    .init(id: $0.id.lowercasedString, channel: $0.channel, status: $0.status.rawValue)
                })
            return try Self.json(response, status: .accepted, location: "/v1/notifications/\(id)")
        case .duplicate(let original):
            // Same idempotency key: answer with what the first request created, change nothing.
            let store = components.store
            guard let stored = try await query("reading the notification", { try await store.notification(id: original.id) }) else {
                throw ProblemDetails.notFound("notification \(original) vanished")
            }
            return try Self.json(NotificationResponse(stored), status: .ok, location: "/v1/notifications/\(original.id.lowercasedString)")
        }
    }

    static func id(_ context: BasicRequestContext, _ what: String) throws -> UUID {
        let text = context.parameters.get("id") ?? ""
        guard let id = UUID(uuidString: text) else {
            throw ProblemDetails(
                type: ProblemDetails.base + "validation", title: "The request is not valid", status: .badRequest,
                detail: "'\(text)' is not a \(what) id (a UUID)", errors: [FieldError(field: "id", message: "must be a UUID")])
        }
        return id
    }

    func show(context: BasicRequestContext) async throws -> Response {
        let id = try Self.id(context, "notification")
        let store = components.store
        guard let stored = try await query("reading the notification", { try await store.notification(id: id) }) else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        return try Self.json(NotificationResponse(stored))
    }

    /// Stops every delivery of the notification that has not started; one in flight finishes.
    func cancel(context: BasicRequestContext) async throws -> Response {
        let id = try Self.id(context, "notification")
        let store = components.store
        guard let cancelled = try await query("cancelling the notification", { try await store.cancel(notificationID: id) }) else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        guard let stored = try await query("reading the notification", { try await store.notification(id: id) }) else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        return try Self.json(CancelResponse(
            cancelled: cancelled.map(\.lowercasedString), notification: NotificationResponse(stored)))
    }

    func deadLetters(_ request: Request) async throws -> Response {
        let parameters = request.uri.queryParameters
        for (key, _) in parameters where !["channel", "since", "until", "cursor", "limit"].contains(String(key)) {
            let name = String(key)
            throw ProblemDetails.invalidParameter(name, "unknown query parameter; expected channel, since, until, cursor, limit")
        }
        var selection = DeadLetterSelection()
        selection.channel = parameters["channel"].map(String.init)
        selection.since = try Self.instantParameter(parameters["since"].map(String.init), "since")
        selection.until = try Self.instantParameter(parameters["until"].map(String.init), "until")
        if let text = parameters["limit"] {
            guard let limit = Int(text), (1...DeadLetterSelection.maximumLimit).contains(limit) else {
                throw ProblemDetails.invalidParameter("limit", "must be a whole number from 1 to \(DeadLetterSelection.maximumLimit)")
            }
            selection.limit = limit
        }
        var cursor: DeadLetterCursor?
        if let token = parameters["cursor"] {
            guard let parsed = DeadLetterCursor(token: String(token)) else {
                throw ProblemDetails.invalidParameter("cursor", "is not a cursor this API returned")
            }
            cursor = parsed
        }
        let store = components.store
        let wanted = selection
        let after = cursor
        let letters = try await query("listing dead letters") { try await store.deadLetters(wanted, after: after) }
        return try Self.json(DeadLetterPage(
            items: letters.map(DeadLetterPage.Item.init),
            nextCursor: letters.count == selection.limit ? letters.last?.cursor.token : nil))
    }

    /// `POST /v1/deadletters/retry` with `{"channel", "since", "until", "delivery_ids", "limit"}` (all optional).
    func replayDeadLetters(_ request: Request) async throws -> Response {
        let body = try await readJSON(request)
        guard case .object(let members) = body else {
            throw ProblemDetails.validation([FieldError(field: "", message: "the body must be a JSON object")])
        }
        var errors: [FieldError] = []
        for key in members.keys.sorted() where !["channel", "since", "until", "delivery_ids", "limit"].contains(key) {
            errors.append(FieldError(field: key, message: "unknown field; expected channel, since, until, delivery_ids, limit"))
        }
        var selection = DeadLetterSelection()
        switch members["channel"] {
        case nil, .null?: break
        case .string(let channel)?: selection.channel = channel
        case let other?: errors.append(FieldError(field: "channel", message: "must be a string, not \(other.typeName)"))
        }
        for field in ["since", "until"] {
            switch members[field] {
            case nil, .null?: break
            case .string(let text)? where Timestamp.parse(text) != nil:
                if field == "since" { selection.since = Timestamp.parse(text) } else { selection.until = Timestamp.parse(text) }
            default: errors.append(FieldError(field: field, message: "must be an RFC 3339 date-time such as 2026-12-01T09:30:00Z"))
            }
        }
        switch members["delivery_ids"] {
        case nil, .null?: break
        case .array(let elements)? where elements.count <= DeadLetterSelection.maximumLimit:
            var ids: [UUID] = []
            for (index, element) in elements.enumerated() {
                if let text = element.stringValue, let id = UUID(uuidString: text) { ids.append(id) } else {
                    errors.append(FieldError(field: "delivery_ids.\(index)", message: "must be a delivery id (a UUID)"))
                }
            }
            selection.deliveryIDs = ids
        default:
            errors.append(FieldError(field: "delivery_ids", message: "must be an array of at most \(DeadLetterSelection.maximumLimit) delivery ids"))
        }
        switch members["limit"] {
        case nil, .null?: break
        case .integer(let limit)? where (1...Int64(DeadLetterSelection.maximumLimit)).contains(limit): selection.limit = Int(limit)
        default: errors.append(FieldError(field: "limit", message: "must be a whole number from 1 to \(DeadLetterSelection.maximumLimit)"))
        }
        guard errors.isEmpty else { throw ProblemDetails.validation(errors) }
        let store = components.store
        let wanted = selection
        let replayed = try await query("replaying dead letters") { try await store.replay(wanted) }
        components.relay.wake()
        return try Self.json(ReplayResponse(replayed: replayed.map(\.lowercasedString)), status: .accepted)
    }

    /// `POST /v1/deliveries/{id}/retry`: sends one failed delivery again.
    func replayDelivery(context: BasicRequestContext) async throws -> Response {
        let id = try Self.id(context, "delivery")
        let store = components.store
        let replayed = try await query("replaying the delivery") { try await store.replay(DeadLetterSelection(deliveryIDs: [id], limit: 1)) }
        guard !replayed.isEmpty else {
            let status = try await query("reading the delivery") { try await store.deliveryStatus(id: id) }
            guard let status else { throw ProblemDetails.notFound("no delivery with id \(id.lowercasedString)") }
            throw ProblemDetails.conflict("delivery \(id.lowercasedString) is \(status.rawValue); only failed deliveries can be retried")
        }
        components.relay.wake()
        return try Self.json(ReplayResponse(replayed: replayed.map(\.lowercasedString)), status: .accepted)
    }

    static func instantParameter(_ text: String?, _ name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw ProblemDetails.invalidParameter(name, "must be an RFC 3339 date-time such as 2026-12-01T09:30:00Z")
        }
        return date
    }

    /// Ready when PostgreSQL answers, the publisher is connected, and the relay keeps up: the oldest
    /// due outbox row has not waited longer than `relayStallThreshold`.
    func ready() async throws -> Response {
        var problems: [String] = []
        let outbox = OutboxStore(client: components.postgres, logger: logger)
        do {
            let age = try await withDeadline(.seconds(2), "PostgreSQL's answer to the readiness check") {
                try await outbox.oldestDueAge()
            }
            if age > configuration.relayStallThreshold {
                let progress = components.relay.progress
                problems.append(
                    "outbox relay: the oldest due row has waited \(age) (threshold \(configuration.relayStallThreshold))"
                        + (progress.lastError.map { "; last relay error: \($0)" } ?? ""))
            }
        } catch {
            problems.append("postgresql: \(StoreFailure.describe(error))")
        }
        if !components.publisher.isConnected { problems.append("rabbitmq: not connected") }
        guard problems.isEmpty else { throw ProblemDetails.unavailable(problems.joined(separator: "; "), retryAfter: 5) }
        return Self.json(["status": "ready"])
    }

    static func json(_ dictionary: [String: String]) -> Response {
        (try? json(dictionary, status: .ok)) ?? Response(status: .internalServerError)
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, location: String? = nil) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try responseEncoder.encode(value))))
    }

    /// A decoding error in words a client can act on, with the position where Foundation gives one.
    static func describe(decodingError error: any Error) -> String {
        guard case DecodingError.dataCorrupted(let context) = error else { return "\(error)" }
        if let underlying = context.underlyingError {
            let nsError = underlying as NSError
            if let detail = nsError.userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
            return "\(underlying)"
        }
        return context.debugDescription
    }
}
