import Crypto
import Foundation
import HTTPTypes
import HeraldBroker
import HeraldConfig
import HeraldCore
import HeraldEngine
import HeraldHTTPRuntime
import HeraldTemplating
import HeraldMessaging
import HeraldProviders
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
    /// One AMQP URL, or the nodes of one cluster separated by commas (`AMQPEndpoint.list(urls:)`).
    public var amqpURL: String
    /// The type of the channel queues Herald declares. Default `classic`; `quorum` for a cluster.
    public var queueType: DeliveryTopology.QueueType = .classic
    /// Largest request body accepted. Default 4 MiB (e-mail attachments: up to 2 MiB of files, base64).
    public var maxBodySize: Int = 4 << 20
    /// Notifications per group commit. Default 256.
    public var commitBatchSize: Int = 256
    public var relay = OutboxRelay.Configuration()
    /// Deliveries due at once are published by the gateway right after their commit; their outbox rows
    /// come due this much later, for the relay only if that failed (`DirectPublisher`). nil: every
    /// row goes through the relay. Default 5 s: how late a delivery can be after a gateway crash.
    public var directPublishGrace: Duration? = .seconds(5)
    public var directPublisher = DirectPublisher.Configuration()
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
    /// Serve `/metrics` on this port (of `metricsHost`) instead of the API's. Default none.
    public var metricsPort: Int?
    public var metricsHost: String = "127.0.0.1"
    /// Requests a second per API key without a rate of its own. Default 1000.
    public var defaultKeyRateLimit: Int = 1000
    /// How long a checked API key is trusted before it is read again (revocation takes this long). Default 5 s.
    public var keyCacheTTL: Duration = .seconds(5)
    /// Accept URL recipients on loopback and private addresses. Only for local development and tests.
    public var allowPrivateTargets: Bool = false
    /// Notifications in one batch request, at most. Default 1000.
    public var maxBatchSize: Int = 1000
    /// Checks the per-delivery tokens of receipt callbacks, and knows the URL providers sign
    /// (`HERALD_PUBLIC_URL`, `HERALD_RECEIPT_SECRET`); nil: only receipts that need neither are taken.
    public var receiptLinks: ReceiptLinks?
    /// Where the providers' receipt secrets (Twilio's auth token, …) are read.
    public var secrets = SecretResolver()
    /// Where `POST /v1/alerts/alertmanager` sends alerts; nil answers that route 404.
    public var alertRouting: AlertRouting?
    /// How often the channel queues' depth and consumers are read from the broker
    /// (`herald_queue_messages_ready`, `herald_queue_consumers`); nil reads none. Default 15 s.
    public var queueSampleInterval: Duration? = .seconds(15)
    /// Full UTC days of notifications (with their deliveries, attempts and receipts) to keep; older
    /// days are dropped whole by `RetentionService`. nil keeps everything. Default nil.
    public var retentionDays: Int?
    /// How often partitions are created ahead and expired days dropped (also once at start); nil
    /// runs no maintenance (`herald retention` still can). Default an hour.
    public var retentionInterval: Duration? = .seconds(3600)

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
    public let directPublisher: DirectPublisher
    public let keys: APIKeyStore
    /// Every route the API router serves, as `METHOD /path` with `{parameter}` captures — what
    /// openapi.yaml must describe (a test keeps them in step).
    public internal(set) var routes: [String] = []
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
    let endpoints = try AMQPEndpoint.list(urls: configuration.amqpURL)
    let queueType = configuration.queueType
    let publisher = BrokerPublisher(
        endpoints: endpoints, topology: DeliveryTopology.topology(for: registry, queueType: queueType), logger: logger)
    let store = NotificationStore(client: postgres, logger: logger)
    let outbox = OutboxStore(client: postgres, logger: logger)
    let directPublisher = DirectPublisher(
        outbox: outbox, publisher: publisher, configuration: configuration.directPublisher, logger: logger)
    let grace = configuration.directPublishGrace
    let committer = GroupCommitter<NewNotification, AcceptOutcome>(
        maxBatchSize: configuration.commitBatchSize, maxConcurrentFlushes: 3, flushDeadline: .seconds(10), logger: logger,
        isolate: StoreFailure.isCausedByData, describe: StoreFailure.describe
    ) { batch in
        let result = try await store.accept(batch, publishingDirectly: grace)
        directPublisher.enqueue(result.publishNow)
        return result.outcomes
    }
    let relay = OutboxRelay(outbox: outbox, publisher: publisher, configuration: configuration.relay, logger: logger)
    let keys = APIKeyStore(client: postgres, logger: logger)
    var components = GatewayComponents(
        postgres: postgres, publisher: publisher, store: store, committer: committer, relay: relay,
        directPublisher: directPublisher, keys: keys)

    // Shutdown runs in reverse order: the committer's last rows go to the direct publisher, which
    // drains before the broker connection closes.
    var services: [any Service] = [
        postgres, publisher, directPublisher, relay, committer, OutboxMonitor(outbox: outbox, logger: logger),
    ]
    if let interval = configuration.retentionInterval {
        services.append(RetentionService(
            store: PartitionStore(client: postgres, logger: logger), keepDays: configuration.retentionDays, interval: interval,
            logger: logger))
    }
    if let interval = configuration.queueSampleInterval {
        services.append(QueueMonitor(
            inspector: BrokerQueueInspector(endpoints: endpoints, logger: logger), channels: { config.snapshot.registry.names },
            interval: interval, logger: logger))
    }
    if let loader {
        services.append(ConfigReloader(loader: loader, store: config, logger: logger, prepare: { snapshot in
            try await publisher.declare(DeliveryTopology.topology(for: snapshot.registry, queueType: queueType))
        }))
    }
    let api = NotificationAPI(
        config: config, components: components, configuration: configuration, logger: logger)
    let receipts = ReceiptsAPI(
        config: config, store: ReceiptStore(client: postgres, logger: logger), links: configuration.receiptLinks,
        secrets: configuration.secrets, deadline: configuration.queryDeadline, logger: logger)
    // The route table first (a router that only lists them), so that the error middleware, which
    // must come before the routes, can answer 405 for a known path asked with another method.
    let listing = Router(context: GatewayRequestContext.self)
    api.addRoutes(to: listing)
    receipts.addRoutes(to: listing)
    components.routes = listing.routes.map { "\($0.method) \($0.path)" }.sorted()
    let router = Router(context: GatewayRequestContext.self)
    router.add(middleware: ObservabilityMiddleware())
    router.add(middleware: ProblemMiddleware(logger: logger, routes: RouteTable(components.routes)))
    router.add(middleware: AuthenticationMiddleware(
        authenticator: KeyAuthenticator(store: keys, ttl: configuration.keyCacheTTL),
        defaultRateLimit: configuration.defaultKeyRateLimit, deadline: configuration.queryDeadline))
    api.addRoutes(to: router)
    receipts.addRoutes(to: router)
    if let metricsPort = configuration.metricsPort {
        let exposition = configuration.metricsExposition
        let metricsRouter = Router()
        metricsRouter.get("/metrics") { _, _ in NotificationAPI.metricsResponse(exposition) }
        services.append(Application(
            router: metricsRouter,
            configuration: .init(address: .hostname(configuration.metricsHost, port: metricsPort), serverName: "Herald metrics"),
            logger: logger))
    }

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

    typealias Context = GatewayRequestContext

    func addRoutes(to router: Router<Context>) {
        router.post("/v1/notifications") { request, context in try await accept(request, context: context) }
        router.get("/v1/notifications") { request, context in try await list(request, context: context) }
        router.post("/v1/notifications/batch") { request, context in try await acceptBatch(request, context: context) }
        router.get("/v1/notifications/:id") { _, context in try await show(context: context) }
        router.post("/v1/notifications/:id/cancel") { _, context in try await cancel(context: context) }
        router.get("/v1/deadletters") { request, context in try await deadLetters(request, context: context) }
        router.post("/v1/deadletters/retry") { request, context in try await replayDeadLetters(request, context: context) }
        router.post("/v1/deliveries/:id/retry") { _, context in try await replayDelivery(context: context) }
        router.post("/v1/audit/query") { request, context in try await auditQuery(request, context: context) }
        router.post("/v1/alerts/alertmanager") { request, context in try await alertmanagerWebhook(request, context: context) }
        router.get("/v1/channels") { _, context in try await channels(context: context) }
        router.get("/v1/templates") { _, context in try templates(context: context) }
        router.post("/v1/templates/:name/render") { request, context in try await renderTemplate(request, context: context) }
        router.get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: APIDocument.yaml)))
        }
        router.get("/docs") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: APIDocument.html)))
        }
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in try await ready() }
        if configuration.metricsPort == nil {
            let exposition = configuration.metricsExposition
            router.get("/metrics") { _, _ in Self.metricsResponse(exposition) }
        }
    }

    static let deliveriesAccepted = HandleCache<String, Counter> {
        Counter(label: "herald_deliveries_accepted_total", dimensions: [("channel", $0)])
    }

    /// `herald_notifications_accepted_total`, and its deliveries by channel.
    func countAccepted(_ notification: NewNotification) {
        accepted.increment()
        for delivery in notification.deliveries {
            Self.deliveriesAccepted[delivery.channel].increment()
        }
    }

    static func metricsResponse(_ exposition: (@Sendable () -> String)?) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(string: exposition?() ?? "")))
    }

    /// A database call of a request, bounded by `queryDeadline`.
    func query<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(configuration.queryDeadline, what, body)
    }

    func readJSON(_ request: Request) async throws -> JSONValue {
        try await readBody(request).json
    }

    /// The body as JSON, with its bytes: only `application/json` (or a `+json` type) is read (415
    /// otherwise), and the strict parser refuses duplicate keys and says where a syntax error is.
    func readBody(_ request: Request) async throws -> (json: JSONValue, bytes: ByteBuffer) {
        let mediaType = (request.headers[.contentType] ?? "").split(separator: ";").first.map {
            $0.trimmingSpacesAndTabs.lowercased()
        } ?? ""
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            throw ProblemDetails(
                type: ProblemDetails.base + "unsupported-media-type", title: "Unsupported media type", status: .unsupportedMediaType,
                detail: mediaType.isEmpty
                    ? "send the body as JSON with Content-Type: application/json"
                    : "bodies are JSON: Content-Type must be application/json, not \(mediaType)")
        }
        let body = try await ProblemDetails.collectBody(request, upTo: configuration.maxBodySize)
        do {
            return (try JSONParser.parse(body.readableBytesView), body)
        } catch {
            throw ProblemDetails.malformedJSON(error.description, field: error.path)
        }
    }

    /// The request's idempotency key: the `Idempotency-Key` header, or the body's `idempotency_key`
    /// (an alias); both given and different is a client error.
    static func idempotencyKey(_ request: Request, body: JSONValue) throws -> String? {
        let header = request.headers[HTTPField.Name("Idempotency-Key")!]
        let field = body["idempotency_key"]?.stringValue
        if let header {
            guard !header.isEmpty, header.count <= 255 else {
                throw ProblemDetails.invalidParameter("Idempotency-Key", "must be 1 to 255 characters")
            }
            if let field, field != header {
                throw ProblemDetails.validation([FieldError(
                    field: "idempotency_key", message: "differs from the Idempotency-Key header; give one of them")])
            }
            return header
        }
        return field
    }

    /// SHA-256 of the request without its idempotency key, as canonical JSON (sorted keys): the same
    /// request sent twice hashes the same however its JSON was spaced or ordered.
    static func requestHash(_ body: JSONValue) -> String {
        var canonical = body
        if case .object(var members) = body {
            members["idempotency_key"] = nil
            canonical = .object(members)
        }
        let bytes = (try? canonicalEncoder.encode(canonical)) ?? Data()
        return Hex.encode(SHA256.hash(data: bytes))
    }

    static let canonicalEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Validates and plans one notification for `principal`: the notification to store and the
    /// response its first request gets (kept with it for idempotent replays).
    func prepare(
        _ json: JSONValue, idempotencyKey: String?, principal: Principal, snapshot: ConfigSnapshot, now: Date, trace: TraceContext?
    ) -> Result<(NewNotification, String), RequestValidationError>
    {
        var validator = snapshot.validator
        validator.allowPrivateTargets = configuration.allowPrivateTargets
        validator.isRestrictedAddress = { AddressPolicy.isRestricted($0) }
        var notificationRequest: NotificationRequest
        switch validator.validate(json, now: now) {
        case .success(let valid): notificationRequest = valid
        case .failure(let failure): return .failure(failure)
        }
        notificationRequest.idempotencyKey = idempotencyKey
        let planned: PlannedNotification
        switch DeliveryEngine.plan(notificationRequest, snapshot: snapshot, now: now, tenant: principal.tenant, trace: trace) {
        case .success(let value): planned = value
        case .failure(let failure): return .failure(failure)
        }
        var notification = planned.notification
        let response = AcceptedResponse(
            id: notification.id.lowercasedString, status: "accepted", configVersion: snapshot.version, rule: planned.plan.rule,
            strategy: planned.plan.strategy.rawValue,
            deliveries: notification.deliveries.map {
                .init(id: $0.id.lowercasedString, channel: $0.channel, status: $0.status.rawValue)
            })
        let responseText = response.text
        notification.requestHash = idempotencyKey.map { _ in Self.requestHash(json) }
        notification.response = responseText
        return .success((notification, responseText))
    }

    func accept(_ request: Request, context: Context) async throws -> Response {
        let start = ContinuousClock.now
        let principal = try context.require(.send)
        let json: JSONValue
        let key: String?
        do {
            json = try await readJSON(request)
            key = try Self.idempotencyKey(request, body: json)
        } catch {
            rejected.increment()
            throw error
        }
        return try await store(json, idempotencyKey: key, principal: principal, trace: context.trace, since: start)
    }

    /// Validates, plans and stores one notification request; the answer a send gets (202, or the
    /// replay of an earlier request with the same idempotency key). Also used by the alert webhook.
    func store(_ json: JSONValue, idempotencyKey key: String?, principal: Principal, trace: TraceContext?, since start: ContinuousClock.Instant)
        async throws -> Response
    {
        // One snapshot for the whole request: validation, routing and rendering agree.
        let snapshot = config.snapshot
        let notification: NewNotification, responseText: String
        switch prepare(json, idempotencyKey: key, principal: principal, snapshot: snapshot, now: Date(), trace: trace) {
        case .success(let prepared): (notification, responseText) = prepared
        case .failure(let failure):
            rejected.increment()
            throw ProblemDetails.validation(failure.errors)
        }
        let committer = components.committer
        let outcome: AcceptOutcome
        do {
            outcome = try await committer.submit(notification, deadline: configuration.acceptDeadline, operation: "storing the notification")
        } catch let error where StoreFailure.isUnavailable(error) || error is GroupCommitterShutDown {
            logger.warning("notification not accepted: the database is unavailable", metadata: [
                "error": "\(StoreFailure.describe(error))",
            ])
            throw ProblemDetails.storeUnavailable()
        }
        switch outcome {
        case .stored:
            if configuration.directPublishGrace == nil || notification.deliveries.contains(where: { $0.status == .scheduled }) {
                components.relay.wake()
            }
            countAccepted(notification)
            acceptLatency.record(duration: ContinuousClock.now - start)
            return Self.rawJSON(responseText, status: .accepted, location: "/v1/notifications/\(notification.id.lowercasedString)")
        case .duplicate(let original):
            return try await replay(original, hash: notification.requestHash, tenant: principal.tenant)
        }
    }

    /// The answer to a request whose idempotency key was used before: the first answer again (same
    /// status and body, `Idempotent-Replayed: true`), or 409 when the body differs.
    func replay(_ original: StoredIdempotency, hash: String?, tenant: String) async throws -> Response {
        if let stored = original.requestHash, let hash, stored != hash {
            throw ProblemDetails.conflict(
                "this idempotency key was used for a different request (notification \(original.id.lowercasedString)); use a new key")
        }
        let location = "/v1/notifications/\(original.id.lowercasedString)"
        if let response = original.response {
            var replayed = Self.rawJSON(response, status: .accepted, location: location)
            replayed.headers[HTTPField.Name("Idempotent-Replayed")!] = "true"
            return replayed
        }
        // Stored before responses were kept: answer with the notification as it stands.
        let store = components.store
        guard let stored = try await query("reading the notification", { try await store.notification(id: original.id, tenant: tenant) })
        else { throw ProblemDetails.notFound("notification \(original.id.lowercasedString) vanished") }
        return try Self.json(NotificationResponse(stored), status: .ok, location: location)
    }

    /// `POST /v1/notifications/batch` with `{"notifications": [ … ]}`: each validated on its own; the
    /// valid ones stored in one transaction; a result per item, in order.
    func acceptBatch(_ request: Request, context: Context) async throws -> Response {
        let principal = try context.require(.send)
        let json = try await readJSON(request)
        guard case .object(let root) = json, case .array(let items)? = root["notifications"] else {
            throw ProblemDetails.validation([FieldError(field: "notifications", message: "is required: an array of notifications")])
        }
        if let extra = root.keys.sorted().first(where: { $0 != "notifications" }) {
            throw ProblemDetails.validation([FieldError(field: extra, message: "unknown field; expected notifications")])
        }
        guard (1...configuration.maxBatchSize).contains(items.count) else {
            throw ProblemDetails.validation([FieldError(
                field: "notifications", message: "must hold 1 to \(configuration.maxBatchSize) notifications, not \(items.count)")])
        }
        let snapshot = config.snapshot
        let now = Date()
        var results = [BatchResponse.Item?](repeating: nil, count: items.count)
        var prepared: [(index: Int, notification: NewNotification, response: String)] = []
        var keys = Set<String>()
        for (index, item) in items.enumerated() {
            let key = item["idempotency_key"]?.stringValue
            if let key, !keys.insert(key).inserted {
                results[index] = .rejected(index, [FieldError(field: "idempotency_key", message: "is used twice in this batch")])
                continue
            }
            switch prepare(item, idempotencyKey: key, principal: principal, snapshot: snapshot, now: now, trace: context.trace) {
            case .success(let (notification, response)): prepared.append((index, notification, response))
            case .failure(let failure):
                results[index] = .rejected(index, failure.errors.map {
                    FieldError(field: "notifications.\(index)" + ($0.field.isEmpty ? "" : ".\($0.field)"), message: $0.message)
                })
            }
        }
        if !prepared.isEmpty {
            let store = components.store
            let batch = prepared.map(\.notification)
            let outcomes: [AcceptOutcome]
            do {
                let grace = configuration.directPublishGrace
                let result = try await withDeadline(configuration.acceptDeadline, "storing the batch") {
                    try await store.accept(batch, publishingDirectly: grace)
                }
                components.directPublisher.enqueue(result.publishNow)
                outcomes = result.outcomes
            } catch let error where StoreFailure.isUnavailable(error) {
                throw ProblemDetails.storeUnavailable()
            }
            for (entry, outcome) in zip(prepared, outcomes) {
                switch outcome {
                case .stored:
                    countAccepted(entry.notification)
                    results[entry.index] = .accepted(entry.index, entry.response)
                case .duplicate(let original):
                    if let stored = original.requestHash, stored != entry.notification.requestHash {
                        results[entry.index] = .rejected(entry.index, [FieldError(
                            field: "notifications.\(entry.index).idempotency_key",
                            message: "was used for a different request (notification \(original.id.lowercasedString))")])
                    } else {
                        results[entry.index] = .duplicate(entry.index, original.id, original.response)
                    }
                }
            }
            if configuration.directPublishGrace == nil { components.relay.wake() }
        }
        let all = results.compactMap { $0 }
        let body = BatchResponse(
            accepted: all.filter { $0.status == "accepted" }.count, rejected: all.filter { $0.status == "rejected" }.count,
            duplicates: all.filter { $0.status == "duplicate" }.count, results: all)
        return try Self.json(body, status: body.accepted + body.duplicates > 0 ? .accepted : .unprocessableContent)
    }

    static func id(_ context: Context, _ what: String) throws -> UUID {
        let text = context.parameters.get("id") ?? ""
        guard let id = UUID(uuidString: text) else {
            throw ProblemDetails(
                type: ProblemDetails.base + "validation", title: "The request is not valid", status: .badRequest,
                detail: "'\(text)' is not a \(what) id (a UUID)", errors: [FieldError(field: "id", message: "must be a UUID")])
        }
        return id
    }

    func show(context: Context) async throws -> Response {
        let tenant = try context.require(.read).tenant
        let id = try Self.id(context, "notification")
        let store = components.store
        guard let stored = try await query("reading the notification", { try await store.notification(id: id, tenant: tenant) })
        else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        return try Self.json(NotificationResponse(stored))
    }

    /// `GET /v1/notifications?status=&channel=&template=&since=&until=&limit=&cursor=`, newest first.
    func list(_ request: Request, context: Context) async throws -> Response {
        let tenant = try context.require(.read).tenant
        let parameters = try ListingQuery(request, known: ["status", "channel", "template", "since", "until", "limit", "cursor"])
        var listing = NotificationListing(tenant: tenant)
        listing.status = try parameters.status()
        listing.channel = parameters.string("channel")
        listing.template = parameters.string("template")
        listing.since = try parameters.instant("since")
        listing.until = try parameters.instant("until")
        listing.limit = try parameters.limit(maximum: NotificationListing.maximumLimit) ?? listing.limit
        listing.cursor = try parameters.cursor()
        let store = components.store
        let wanted = listing
        let summaries = try await query("listing notifications") { try await store.list(wanted) }
        return try Self.json(Page(
            items: summaries.map(NotificationSummaryItem.init),
            nextCursor: summaries.count == listing.limit ? summaries.last?.cursor.token : nil))
    }

    /// Stops every delivery of the notification that has not started; one in flight finishes.
    func cancel(context: Context) async throws -> Response {
        let tenant = try context.require(.send).tenant
        let id = try Self.id(context, "notification")
        let store = components.store
        guard let cancelled = try await query("cancelling the notification", { try await store.cancel(notificationID: id, tenant: tenant) })
        else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        guard let stored = try await query("reading the notification", { try await store.notification(id: id, tenant: tenant) }) else {
            throw ProblemDetails.notFound("no notification with id \(id.lowercasedString)")
        }
        return try Self.json(CancelResponse(
            cancelled: cancelled.map(\.lowercasedString), notification: NotificationResponse(stored)))
    }

    func deadLetters(_ request: Request, context: Context) async throws -> Response {
        let tenant = try context.require(.read).tenant
        let parameters = try ListingQuery(request, known: ["channel", "since", "until", "cursor", "limit"])
        var selection = DeadLetterSelection(tenant: tenant)
        selection.channel = parameters.string("channel")
        selection.since = try parameters.instant("since")
        selection.until = try parameters.instant("until")
        selection.limit = try parameters.limit(maximum: DeadLetterSelection.maximumLimit) ?? selection.limit
        let after = try parameters.cursor()
        let store = components.store
        let wanted = selection
        let letters = try await query("listing dead letters") { try await store.deadLetters(wanted, after: after) }
        return try Self.json(Page(
            items: letters.map(DeadLetterItem.init),
            nextCursor: letters.count == selection.limit ? letters.last?.cursor.token : nil))
    }

    /// `POST /v1/deadletters/retry` with `{"channel", "since", "until", "delivery_ids", "limit"}` (all optional).
    func replayDeadLetters(_ request: Request, context: Context) async throws -> Response {
        let tenant = try context.require(.send).tenant
        let body = try await readJSON(request)
        guard case .object(let members) = body else {
            throw ProblemDetails.validation([FieldError(field: "", message: "the body must be a JSON object")])
        }
        var errors: [FieldError] = []
        for key in members.keys.sorted() where !["channel", "since", "until", "delivery_ids", "limit"].contains(key) {
            errors.append(FieldError(field: key, message: "unknown field; expected channel, since, until, delivery_ids, limit"))
        }
        var selection = DeadLetterSelection(tenant: tenant)
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
    func replayDelivery(context: Context) async throws -> Response {
        let tenant = try context.require(.send).tenant
        let id = try Self.id(context, "delivery")
        let store = components.store
        let replayed = try await query("replaying the delivery") {
            try await store.replay(DeadLetterSelection(tenant: tenant, deliveryIDs: [id], limit: 1))
        }
        guard !replayed.isEmpty else {
            let status = try await query("reading the delivery") { try await store.deliveryStatus(id: id, tenant: tenant) }
            guard let status else { throw ProblemDetails.notFound("no delivery with id \(id.lowercasedString)") }
            throw ProblemDetails.conflict("delivery \(id.lowercasedString) is \(status.rawValue); only failed deliveries can be retried")
        }
        components.relay.wake()
        return try Self.json(ReplayResponse(replayed: replayed.map(\.lowercasedString)), status: .accepted)
    }

    /// `POST /v1/audit/query`: MongoDB-style filters over the caller's notifications, deliveries and
    /// attempts (see AuditAPI.swift); the tenant condition is the server's, not the filter's.
    func auditQuery(_ request: Request, context: Context) async throws -> Response {
        let tenant = try context.require(.read).tenant
        let body = try await readJSON(request)
        let store = AuditStore(client: components.postgres, logger: logger)
        let response = try await withDeadline(configuration.queryDeadline + .seconds(1), "the audit query") {
            try await auditQueryResponse(body: body, tenant: tenant, store: store)
        }
        return try Self.json(response)
    }

    /// `GET /v1/channels`: what the configuration in force offers, with each provider's circuit over
    /// the worker replicas seen lately. The circuits are for operators' eyes: when PostgreSQL can't
    /// answer, the channels are listed without them rather than not at all.
    func channels(context: Context) async throws -> Response {
        _ = try context.require(.read)
        let snapshot = config.snapshot
        let store = CircuitStore(client: components.postgres, logger: logger)
        var circuits: [String: [String: CircuitSummary]]?
        do {
            circuits = try await query("reading the provider circuits") { try await store.summaries(seenWithin: Self.circuitsSeenWithin) }
        } catch {
            logger.warning("GET /v1/channels without circuits", metadata: ["error": "\(StoreFailure.describe(error))"])
        }
        return try Self.json(ChannelsResponse(snapshot, circuits: circuits))
    }

    /// A replica whose rows were not touched for this long is taken to be gone (they touch every 30 s).
    static let circuitsSeenWithin: Duration = .seconds(180)

    /// `GET /v1/templates`.
    func templates(context: Context) throws -> Response {
        _ = try context.require(.read)
        let snapshot = config.snapshot
        return try Self.json(TemplatesResponse(snapshot))
    }

    /// `POST /v1/templates/{name}/render` with `{"data", "to", "metadata", "locale", "channel"}`: what the
    /// template renders, for one channel or for every category it has, without sending anything.
    func renderTemplate(_ request: Request, context: Context) async throws -> Response {
        _ = try context.require(.read)
        let name = context.parameters.get("name") ?? ""
        let snapshot = config.snapshot
        guard let template = snapshot.templates[name] else {
            throw ProblemDetails.notFound("no template '\(name)'; known: \(snapshot.templates.keys.sorted().joined(separator: ", "))")
        }
        let body = try await readJSON(request)
        guard case .object(let members) = body else {
            throw ProblemDetails.validation([FieldError(field: "", message: "the body must be a JSON object")])
        }
        var errors: [FieldError] = []
        for key in members.keys.sorted() where !["data", "to", "metadata", "locale", "channel"].contains(key) {
            errors.append(FieldError(field: key, message: "unknown field; expected data, to, metadata, locale, channel"))
        }
        for key in ["data", "to", "metadata"] {
            if let value = members[key], value.objectValue == nil {
                errors.append(FieldError(field: key, message: "must be an object, not \(value.typeName)"))
            }
        }
        for key in ["channel", "locale"] {
            if let value = members[key], value.stringValue == nil {
                errors.append(FieldError(field: key, message: "must be a string, not \(value.typeName)"))
            }
        }
        guard errors.isEmpty else { throw ProblemDetails.validation(errors) }
        var categories = Set(template.locales.values.flatMap(\.keys))
        if let channelName = members["channel"]?.stringValue {
            guard let channel = snapshot.registry[channelName] else {
                throw ProblemDetails.validation([FieldError(field: "channel", message: "unknown channel '\(channelName)'")])
            }
            categories = [channel.category]
        }
        guard errors.isEmpty else { throw ProblemDetails.validation(errors) }
        let locale = members["locale"]?.stringValue ?? members["to"]?["locale"]?.stringValue
        let values: [String: JSONValue] = [
            "data": members["data"] ?? .object([:]), "to": members["to"] ?? .object([:]), "metadata": members["metadata"] ?? .object([:]),
        ]
        var rendered: [String: MessageContent] = [:]
        var missing: [String: [String]] = [:]
        for category in categories.sorted(by: { $0.rawValue < $1.rawValue }) {
            missing[category.rawValue] = template.missingNames(category: category, locale: locale, context: values)
            rendered[category.rawValue] = try? template.render(category: category, locale: locale, context: RenderContext(values))
        }
        return try Self.json(RenderResponse(
            template: name, locale: template.locale(for: locale), rendered: rendered, missing: missing.filter { !$0.value.isEmpty }))
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

    static func rawJSON(_ text: String, status: HTTPResponse.Status, location: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
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

}
