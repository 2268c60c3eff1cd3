import Foundation
import HTTPTypes
import HeraldConfig
import HeraldCore
import HeraldGateway
import HeraldMessaging
import HeraldStore
import HeraldWorker
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Testing

/// The whole path through real servers: HTTP gateway → PostgreSQL (outbox) → relay → RabbitMQ →
/// worker → libcurl → a real HTTP receiver → attempt and status back in PostgreSQL → GET.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct EndToEndTests {
    /// A webhook channel of its own per test (own queues), retrying quickly.
    static func channel() -> ChannelDefinition {
        ChannelDefinition(
            name: TestServers.uniqueChannelName("itest-webhook"), recipient: RecipientField(name: "webhook_url", format: .url),
            concurrency: 8, timeout: .seconds(5),
            retry: RetryPolicy(
                name: "fast", maxAttempts: 3, initialDelay: .milliseconds(200), multiplier: 2, maxDelay: .seconds(1),
                retryAmbiguous: true))
    }

    /// What a test gets from `withHerald`.
    struct Harness: Sendable {
        /// Sends the harness key (scopes send and read) with every request.
        let client: AuthorizedClient
        let receiver: WebhookReceiver
        let components: GatewayComponents
        let key: APIKey
        var store: NotificationStore { components.store }
    }

    /// Runs a gateway and a worker for `channel` plus a receiver answering `statuses`, then `body`.
    static func withHerald(
        channel: ChannelDefinition, receiverStatuses: [Int] = [],
        _ body: @Sendable (any TestClientProtocol, WebhookReceiver, NotificationStore) async throws -> Void
    ) async throws {
        try await withHerald(channel: channel, receiver: WebhookReceiver(statuses: receiverStatuses)) { harness in
            try await body(harness.client, harness.receiver, harness.store)
        }
    }

    static func withHerald(
        channel: ChannelDefinition, receiver: WebhookReceiver, extraServices: [any Service] = [],
        gateway adjust: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: @Sendable (Harness) async throws -> Void
    ) async throws {
        try await TestServers.withDatabase { _ in }  // migrate first
        let logger = TestServers.logger
        var gatewayConfiguration = GatewayConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        gatewayConfiguration.port = 0
        gatewayConfiguration.relay.pollInterval = .milliseconds(50)
        gatewayConfiguration.allowPrivateTargets = true  // the receiver is on 127.0.0.1
        adjust(&gatewayConfiguration)
        let config = ConfigStore(try TestServers.webhookSnapshot(channel))
        let (gateway, components) = try buildGateway(configuration: gatewayConfiguration, config: config, logger: logger)
        let (token, key) = try await TestServers.createKey()
        var workerConfiguration = WorkerConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        workerConfiguration.allowPrivateTargets = true  // the receiver is on 127.0.0.1
        workerConfiguration.workerName = "itest-worker"
        workerConfiguration.secrets = TestServers.webhookSecrets
        workerConfiguration.relay.pollInterval = .milliseconds(50)
        workerConfiguration.hostDeferral = .milliseconds(200)
        let background = ServiceGroup(
            services: [receiver.application] + extraServices
                + (try buildWorker(channels: .named([channel.name]), config: config, configuration: workerConfiguration, logger: logger)),
            logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await background.run() }
            try await receiver.waitUntilListening()
            try await gateway.test(.live) { client in
                // The gateway's own publisher declares the channel's queues; wait for it before sending.
                _ = try await eventually("the gateway to be ready") {
                    try await client.execute(uri: "/readyz", method: .get).status == .ok ? true : nil
                }
                try await body(Harness(
                    client: AuthorizedClient(base: client, token: token), receiver: receiver, components: components, key: key))
            }
            await background.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    static func post(_ client: any TestClientProtocol, _ json: String) async throws -> TestResponse {
        try await client.execute(
            uri: "/v1/notifications", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }

    static func document(_ response: TestResponse) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(response.body.readableBytesView))
    }

    /// GETs the notification until its first delivery reaches a terminal status.
    static func waitForTerminal(_ client: any TestClientProtocol, id: String) async throws -> JSONValue {
        try await eventually("notification \(id) to finish") {
            let document = try Self.document(try await client.execute(uri: "/v1/notifications/\(id)", method: .get))
            guard let status = document.value(atPath: "deliveries.0.status")?.stringValue,
                DeliveryStatus(rawValue: status)?.isTerminal == true
            else { return nil }
            return document
        }
    }

    @Test func aNotificationTravelsToARealEndpointAndShowsSentWithOneAttempt() async throws {
        let channel = Self.channel()
        try await Self.withHerald(channel: channel) { client, receiver, _ in
            let accepted = try await Self.post(client, """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(receiver.url)"},
                 "message": {"subject": "Hello", "text": "Hi \\"there\\" <b>"}, "metadata": {"order": 42}}
                """)
            #expect(accepted.status == .accepted)
            let body = try Self.document(accepted)
            #expect(body["status"] == "accepted")
            #expect(body.value(atPath: "deliveries.0.status") == "queued")
            #expect(body.value(atPath: "deliveries.0.channel") == .string(channel.name))
            let id = try #require(body["id"]?.stringValue)

            let final = try await Self.waitForTerminal(client, id: id)
            #expect(final["status"] == "sent")
            #expect(final.value(atPath: "deliveries.0.status") == "sent")
            #expect(final.value(atPath: "deliveries.0.attempt_count") == 1)
            let attempts = try #require(final.value(atPath: "deliveries.0.attempts")?.arrayValue)
            #expect(attempts.count == 1)
            #expect(attempts.first?["outcome"] == "success")
            #expect(attempts.first?["http_status"] == 200)
            #expect(attempts.first?["worker"] == "itest-worker")
            #expect(final.value(atPath: "request.metadata.order") == 42)

            // What the endpoint really received.
            let received = try #require(receiver.requests.first)
            #expect(receiver.requests.count == 1)
            #expect(received.path == "/hooks/test")
            #expect(received.headers["webhook-id"]?.hasPrefix("msg_") == true)
            let payload = try JSONDecoder().decode(JSONValue.self, from: Data(received.body))
            #expect(payload.value(atPath: "data.notification_id") == .string(id))
            #expect(payload.value(atPath: "data.text") == "Hi \"there\" <b>")
            #expect(payload.value(atPath: "data.metadata.order") == 42)
            // One webhook format (issue 8, defect 8): the shipped channel's type, signed with its
            // WEBHOOK_SECRET as the reference standardwebhooks library verifies it.
            #expect(payload.value(atPath: "type") == "herald.notification")
            let verified = try await runPython(
                "import sys\nfrom standardwebhooks.webhooks import Webhook\n"
                    + "headers = {'webhook-id': sys.argv[2], 'webhook-timestamp': sys.argv[3], 'webhook-signature': sys.argv[4]}\n"
                    + "print(Webhook(sys.argv[1]).verify(sys.argv[5], headers)['type'])",
                [TestServers.webhookSecret, received.headers["webhook-id"] ?? "", received.headers["webhook-timestamp"] ?? "",
                 received.headers["webhook-signature"] ?? "", String(decoding: received.body, as: UTF8.self)])
            #expect(verified.trimmingCharacters(in: .whitespacesAndNewlines) == "herald.notification")
        }
    }

    @Test func anEndpointAnswering500ThenOKShowsTwoAttemptsAndSent() async throws {
        let channel = Self.channel()
        try await Self.withHerald(channel: channel, receiverStatuses: [500]) { client, receiver, _ in
            let accepted = try await Self.post(client, """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(receiver.url)"}, "message": {"text": "retry me"}}
                """)
            #expect(accepted.status == .accepted)
            let id = try #require(try Self.document(accepted)["id"]?.stringValue)
            let final = try await Self.waitForTerminal(client, id: id)
            #expect(final.value(atPath: "deliveries.0.status") == "sent")
            let attempts = try #require(final.value(atPath: "deliveries.0.attempts")?.arrayValue)
            #expect(attempts.count == 2)
            #expect(attempts.map { $0["number"] } == [1, 2])
            #expect(attempts.map { $0["outcome"] } == ["transient_failure", "success"])
            #expect(attempts.map { $0["http_status"] } == [500, 200])
            #expect(attempts.first?["error"]?.stringValue?.hasPrefix("HTTP 500") == true)
            // The attempts keep the history; a sent delivery has no last error.
            #expect(final.value(atPath: "deliveries.0.last_error") == nil)
            #expect(receiver.requests.count == 2)
            // Both attempts carry the same webhook-id, so the receiver can de-duplicate.
            #expect(Set(receiver.requests.map { $0.headers["webhook-id"] ?? "" }).count == 1)
        }
    }

    @Test func aPermanentFailureEndsFailedAfterOneAttempt() async throws {
        let channel = Self.channel()
        try await Self.withHerald(channel: channel, receiverStatuses: [404]) { client, receiver, _ in
            let accepted = try await Self.post(client, """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(receiver.url)"}, "message": {"text": "nobody home"}}
                """)
            let id = try #require(try Self.document(accepted)["id"]?.stringValue)
            let final = try await Self.waitForTerminal(client, id: id)
            #expect(final["status"] == "failed")
            #expect(final.value(atPath: "deliveries.0.status") == "failed")
            #expect(final.value(atPath: "deliveries.0.attempts")?.arrayValue?.count == 1)
            #expect(final.value(atPath: "deliveries.0.last_error")?.stringValue?.hasPrefix("HTTP 404") == true)
        }
    }

    @Test func malformedAndInvalidRequestsGetProblemDocumentsAndStoreNothing() async throws {
        let channel = Self.channel()
        let marker = UUID().uuidString
        try await Self.withHerald(channel: channel) { client, _, store in
            let malformed = try await Self.post(client, #"{"channel": "\#(channel.name)", "metadata": {"m": "\#(marker)"}"#)
            #expect(malformed.status == .badRequest)
            #expect(malformed.headers[.contentType] == "application/problem+json")
            let malformedProblem = try Self.document(malformed)
            #expect(malformedProblem["status"] == 400)
            #expect(malformedProblem["type"] == "https://herald.dev/problems/malformed-json")

            let invalid = try await Self.post(client, """
                {"channel": "\(channel.name)", "to": {}, "message": {"text": "x"}, "metadata": {"m": "\(marker)"}}
                """)
            #expect(invalid.status == .unprocessableContent)
            #expect(invalid.headers[.contentType] == "application/problem+json")
            let problem = try Self.document(invalid)
            #expect(problem["errors"] == [["field": "to.webhook_url", "message": .string("is required by channel '\(channel.name)'")]])

            let unknown = try await Self.post(client, """
                {"channel": "carrier-pigeon", "to": {"webhook_url": "https://x.test/"}, "message": {"text": "x"}, "metadata": {"m": "\(marker)"}}
                """)
            #expect(unknown.status == .unprocessableContent)
            #expect(try Self.document(unknown).value(atPath: "errors.0.field") == "channel")

            var stored = -1
            for try await count in try await store.client.query(
                "SELECT count(*)::bigint FROM notifications WHERE request::text LIKE \("%" + marker + "%")"
            ).decode(Int.self) {
                stored = count
            }
            #expect(stored == 0)

            let missing = try await client.execute(uri: "/v1/notifications/\(UUID().uuidString)", method: .get)
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")
        }
    }

    @Test func anIdempotencyKeyStoresOnce() async throws {
        let channel = Self.channel()
        let key = "order-\(UUID().uuidString)"
        try await Self.withHerald(channel: channel) { client, receiver, _ in
            let json = """
                {"channel": "\(channel.name)", "to": {"webhook_url": "\(receiver.url)"}, "message": {"text": "once"},
                 "idempotency_key": "\(key)"}
                """
            let first = try await Self.post(client, json)
            #expect(first.status == .accepted)
            let id = try #require(try Self.document(first)["id"]?.stringValue)
            _ = try await Self.waitForTerminal(client, id: id)
            let second = try await Self.post(client, json)
            // Stripe's semantics: the first answer again, marked as a replay.
            #expect(second.status == .accepted)
            #expect(second.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            #expect(try Self.document(second)["id"] == .string(id))
            try await Task.sleep(for: .milliseconds(300))
            #expect(receiver.requests.count == 1)
        }
    }

    @Test func theAttemptLogIsAppendOnly() async throws {
        try await TestServers.withDatabase { client in
            let store = NotificationStore(client: client, logger: TestServers.logger)
            let notificationID = UUID.timeOrdered(), deliveryID = UUID.timeOrdered()
            try await client.query("INSERT INTO notifications (id, request) VALUES (\(notificationID), '{}'::jsonb)")
            try await client.query(
                "INSERT INTO deliveries (id, notification_id, channel, status) VALUES (\(deliveryID), \(notificationID), 'x', 'queued')")
            try await store.settle([Settlement(deliveryID: deliveryID, attempts: [AttemptRecord(
                deliveryID: deliveryID, notificationID: notificationID, number: 1, startedAt: Date(), finishedAt: Date(),
                outcome: .transientFailure, httpStatus: 503, error: "HTTP 503", resultingStatus: .retrying, worker: "t")],
                status: .retrying, lastError: "HTTP 503")])
            await #expect(throws: PSQLError.self) {
                try await client.query("UPDATE attempts SET outcome = 'success' WHERE delivery_id = \(deliveryID)")
            }
            await #expect(throws: PSQLError.self) {
                try await client.query("DELETE FROM attempts WHERE delivery_id = \(deliveryID)")
            }
            var outcomes: [String] = []
            for try await outcome in try await client.query(
                "SELECT outcome FROM attempts WHERE delivery_id = \(deliveryID)").decode(String.self) { outcomes.append(outcome) }
            #expect(outcomes == ["transient_failure"])
            var status = ""
            for try await value in try await client.query(
                "SELECT status FROM deliveries WHERE id = \(deliveryID)").decode(String.self) { status = value }
            #expect(status == "retrying")
        }
    }
}
