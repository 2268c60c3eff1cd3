import Foundation
import HTTPTypes
import HeraldBroker
import HeraldConfig
import HeraldCore
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
    var postgresConfiguration = try PostgresClient.Configuration(url: configuration.postgresURL)
    postgresConfiguration.options.maximumConnections = configuration.postgresConnections
    let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
    let endpoint = try AMQPEndpoint(url: configuration.amqpURL)
    let publisher = BrokerPublisher(endpoint: endpoint, topology: DeliveryTopology.topology(for: registry), logger: logger)
    let store = NotificationStore(client: postgres, logger: logger)
    let committer = GroupCommitter<NewNotification, AcceptOutcome>(
        maxBatchSize: configuration.commitBatchSize, maxConcurrentFlushes: 3, logger: logger
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
        config: config, components: components,
        maxBodySize: configuration.maxBodySize, metricsExposition: configuration.metricsExposition, logger: logger)
    let router = Router()
    router.add(middleware: ProblemMiddleware())
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
    let maxBodySize: Int
    let metricsExposition: (@Sendable () -> String)?
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
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in try await ready() }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: metricsExposition?() ?? "")))
        }
    }

    func accept(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxBodySize)
        } catch {
            throw ProblemDetails(
                type: ProblemDetails.base + "too-large", title: "The body is too large", status: .contentTooLarge,
                detail: "request bodies are limited to \(maxBodySize) bytes")
        }
        let json: JSONValue
        do {
            json = try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
        } catch {
            rejected.increment()
            throw ProblemDetails.malformedJSON(Self.describe(decodingError: error))
        }
        // One snapshot for the whole request: validation, routing and rendering agree.
        let snapshot = config.snapshot
        let notificationRequest: NotificationRequest
        switch snapshot.validator.validate(json) {
        case .success(let valid): notificationRequest = valid
        case .failure(let failure):
            rejected.increment()
            throw ProblemDetails.validation(failure.errors)
        }
        let plan: DeliveryPlan
        switch snapshot.plan(notificationRequest) {
        case .success(let planned): plan = planned
        case .failure(let failure):
            rejected.increment()
            throw ProblemDetails.validation(failure.errors)
        }

        let now = Date()
        let notificationID = UUID.timeOrdered(now: now)
        let jobs = plan.channels.map { channel in
            DeliveryJob(
                deliveryID: .timeOrdered(now: now), notificationID: notificationID, channel: channel, attempt: 1,
                to: notificationRequest.to, message: plan.messages[channel] ?? notificationRequest.message,
                data: notificationRequest.data, metadata: notificationRequest.metadata, acceptedAt: now,
                configVersion: snapshot.version)
        }
        var deliveries: [NewDelivery] = []
        switch plan.strategy {
        case .all:
            for job in jobs {
                deliveries.append(NewDelivery(
                    id: job.deliveryID, channel: job.channel, outboxPayload: String(decoding: try job.encoded(), as: UTF8.self)))
            }
        case .fallback:
            // Only the first is queued; it carries the rest, to be queued one by one if it fails for good.
            var first = jobs[0]
            first.fallbacks = Array(jobs.dropFirst())
            deliveries.append(NewDelivery(
                id: first.deliveryID, channel: first.channel, outboxPayload: String(decoding: try first.encoded(), as: UTF8.self)))
            for job in jobs.dropFirst() {
                deliveries.append(NewDelivery(id: job.deliveryID, channel: job.channel, outboxPayload: nil))
            }
        }
        let notification = NewNotification(
            id: notificationID, createdAt: now, idempotencyKey: notificationRequest.idempotencyKey,
            configVersion: snapshot.version, document: notificationRequest.document, deliveries: deliveries)

        switch try await components.committer.submit(notification) {
        case .stored:
            components.relay.wake()
            accepted.increment()
            acceptLatency.record(duration: ContinuousClock.now - start)
            let response = AcceptedResponse(
                id: notificationID.lowercasedString, status: "accepted", configVersion: snapshot.version, rule: plan.rule,
                strategy: plan.strategy.rawValue,
                deliveries: deliveries.map { .init(id: $0.id.lowercasedString, channel: $0.channel, status: "queued") })
            return try Self.json(response, status: .accepted, location: "/v1/notifications/\(notificationID.lowercasedString)")
        case .duplicate(let original):
            // Same idempotency key: answer with what the first request created, change nothing.
            guard let stored = try await components.store.notification(id: original) else {
                throw ProblemDetails.notFound("notification \(original) vanished")
            }
            return try Self.json(NotificationResponse(stored), status: .ok, location: "/v1/notifications/\(original.lowercasedString)")
        }
    }

    func show(context: BasicRequestContext) async throws -> Response {
        let text = context.parameters.get("id") ?? ""
        guard let id = UUID(uuidString: text) else {
            throw ProblemDetails(
                type: ProblemDetails.base + "validation", title: "The request is not valid", status: .badRequest,
                detail: "'\(text)' is not a notification id (a UUID)", errors: [FieldError(field: "id", message: "must be a UUID")])
        }
        guard let stored = try await components.store.notification(id: id) else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        return try Self.json(NotificationResponse(stored))
    }

    func ready() async throws -> Response {
        var problems: [String] = []
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await components.store.ping() }
                group.addTask {
                    try await Task.sleep(for: .seconds(2))
                    throw StoreError(message: "PostgreSQL did not answer within 2 s")
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            problems.append("postgresql: \(error)")
        }
        if !components.publisher.isConnected { problems.append("rabbitmq: not connected") }
        guard problems.isEmpty else { throw ProblemDetails.unavailable(problems.joined(separator: "; ")) }
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
