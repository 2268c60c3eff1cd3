import Foundation
import HeraldConfig
import HeraldCore
import HeraldStore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Where the real servers are: the environment `scripts/test` sets, or the local defaults.
enum TestServers {
    static let environment = ProcessInfo.processInfo.environment
    static let postgresURL = environment["HERALD_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:15432/herald_test"
    static let amqpURL = environment["HERALD_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"

    static var logger: Logger {
        var logger = Logger(label: "herald.test")
        logger.logLevel = environment["HERALD_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        return logger
    }

    /// The Standard Webhooks secret the in-process workers sign with: the shipped webhook channel's
    /// `WEBHOOK_SECRET`.
    static let webhookSecret = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    static var webhookSecrets: SecretResolver { SecretResolver(environment: ["WEBHOOK_SECRET": webhookSecret], secretsDirectory: "") }

    /// A snapshot serving `channel` (its retry, concurrency and timeouts as the test sets them) through the
    /// provider of the shipped `channels.d/webhook.yaml`: the one webhook format there is.
    static func webhookSnapshot(_ channel: ChannelDefinition, version: String = "itest") throws -> ConfigSnapshot {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-webhook-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("channels.d"), withIntermediateDirectories: true)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        try FileManager.default.copyItem(
            at: root.appendingPathComponent("channels.d/webhook.yaml"), to: directory.appendingPathComponent("channels.d/webhook.yaml"))
        try FileManager.default.copyItem(
            at: root.appendingPathComponent("retry-policies.yaml"), to: directory.appendingPathComponent("retry-policies.yaml"))
        switch ConfigLoader(directory: directory.path).load() {
        case .success(let shipped):
            return ConfigSnapshot(
                version: version, registry: ChannelRegistry([channel]), providers: [channel.name: shipped.providers(for: "webhook")])
        case .failure(let errors):
            throw HarnessError("the shipped channels.d/webhook.yaml does not load: \(errors)")
        }
    }

    /// Runs `body` with a connected client on a migrated test database.
    static func withDatabase<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: try .init(url: postgresURL), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            try await Migrations.migrate(client: client, logger: logger)
            let result = try await body(client)
            group.cancelAll()
            return result
        }
    }

    /// Creates an API key (on the migrated test database) for a tenant of its own unless one is named.
    static func createKey(tenant: String = "itest-\(UUID().uuidString.prefix(8).lowercased())", scopes: Set<APIScope> = [.send, .read])
        async throws -> (token: String, key: APIKey)
    {
        try await withDatabase { client in
            try await APIKeyStore(client: client, logger: logger).create(tenant: tenant, scopes: scopes, name: "itest")
        }
    }

    /// A channel name no other test run shares, so queues don't mix.
    static func uniqueChannelName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// A real HTTP endpoint on 127.0.0.1 standing in for a webhook receiver. It records every request and
/// answers with the statuses it is scripted with (then 200).
final class WebhookReceiver: Sendable {
    struct Received: Sendable {
        var path: String
        var headers: [String: String]
        var body: [UInt8]
        var at = Date()
    }

    private let scriptedStatuses: Mutex<[Int]>
    private let received = Mutex<[Received]>([])
    private let boundPort = Mutex<Int?>(nil)
    private let answerAfter: Duration
    /// What it answers once the scripted statuses are used up. Default 200.
    let fallbackStatus: Mutex<Int>

    /// - Parameter delay: how long it waits before answering each request (a hanging receiver).
    init(statuses: [Int] = [], then fallbackStatus: Int = 200, delay: Duration = .zero) {
        scriptedStatuses = Mutex(statuses)
        self.fallbackStatus = Mutex(fallbackStatus)
        answerAfter = delay
    }

    var requests: [Received] { received.withLock { $0 } }
    var port: Int? { boundPort.withLock { $0 } }
    var url: String { "http://127.0.0.1:\(port ?? 0)/hooks/test" }

    var application: some ApplicationProtocol {
        let router = Router()
        router.post("/**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            self.received.withLock { $0.append(Received(path: request.uri.path, headers: headers, body: Array(buffer: body))) }
            let fallback = self.fallbackStatus.withLock { $0 }
            let status = self.scriptedStatuses.withLock { $0.isEmpty ? fallback : $0.removeFirst() }
            if self.answerAfter > .zero { try? await Task.sleep(for: self.answerAfter) }
            return Response(status: .init(code: status))
        }
        return Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in self.boundPort.withLock { $0 = channel.localAddress?.port } },
            logger: TestServers.logger)
    }

    /// Waits until the server has a port.
    func waitUntilListening() async throws {
        for _ in 0..<200 where port == nil { try await Task.sleep(for: .milliseconds(10)) }
        guard port != nil else { throw TestTimeout(what: "the webhook receiver to listen") }
    }
}

/// A real HTTP server on 127.0.0.1 serving fixed files on GET — what a message points at and a worker
/// fetches (an image to upload, an attachment by URL); any other path is a 404. Records the paths asked for.
final class FileServer: Sendable {
    struct File: Sendable {
        var contentType: String
        var bytes: [UInt8]
    }

    /// By path as requested (percent-encoded as in the URL).
    let files: [String: File]
    private let asked = Mutex<[String]>([])
    private let boundPort = Mutex<Int?>(nil)

    init(_ files: [String: File]) { self.files = files }

    var requests: [String] { asked.withLock { $0 } }

    func url(_ path: String) -> String { "http://127.0.0.1:\(boundPort.withLock { $0 } ?? 0)\(path)" }

    /// Runs `body` while the server listens.
    func serving<T: Sendable>(_ body: @Sendable (FileServer) async throws -> T) async throws -> T {
        let router = Router()
        router.get("/**") { request, _ -> Response in
            let path = request.uri.path
            self.asked.withLock { $0.append(path) }
            guard let file = self.files[path] else { return Response(status: .notFound) }
            return Response(status: .ok, headers: [.contentType: file.contentType], body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
        }
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in self.boundPort.withLock { $0 = channel.localAddress?.port } }, logger: TestServers.logger)
        let services = ServiceGroup(services: [application], logger: TestServers.logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await services.run()
                return nil
            }
            _ = try await eventually(timeout: .seconds(5), "the file server to listen") { self.boundPort.withLock { $0 } }
            let result = try await body(self)
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }
}

struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `probe` until it returns a value, or fails after `timeout`.
func eventually<T: Sendable>(
    timeout: Duration = .seconds(20), _ what: String, probe: @Sendable () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await probe() { return value }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestTimeout(what: what)
}

/// A test client that sends `Authorization: Bearer <token>` with every request that has none.
struct AuthorizedClient: TestClientProtocol {
    let base: any TestClientProtocol
    let token: String

    var port: Int? { base.port }

    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
        var headers = headers
        if headers[.authorization] == nil { headers[.authorization] = "Bearer \(token)" }
        return try await base.executeRequest(uri: uri, method: method, headers: headers, body: body)
    }

    /// The same server with another key (or none: `token` empty sends no header).
    func with(token: String) -> any TestClientProtocol {
        token.isEmpty ? base : AuthorizedClient(base: base, token: token)
    }
}
