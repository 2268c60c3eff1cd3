import Foundation
import HeraldConfig
import HeraldCore
import HeraldGateway
import HeraldMessaging
import HeraldProviders
import HeraldWorker
import Hummingbird
import Logging
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import ServiceLifecycle

/// A gateway and a worker over shipped channel files pointed at real peers (Kannel, Synapse, the
/// stand-in), with delivery receipts configured: the gateway's own address is the public URL the
/// providers call back. Channel names get a suffix of their own so runs don't share queues.
struct PeerHarness: Sendable {
    let client: PlainHTTPClient
    let baseURL: String
    let links: ReceiptLinks
    let suffix: String
    let secrets: [String: String]

    func secret(_ name: String) -> String { secrets[name] ?? "" }

    /// A shipped channel file, with text replacements (endpoints, rates) applied.
    struct Channel: Sendable {
        var file: String
        var replacing: [(String, String)] = []
        /// Another channel made from the same file, under this name.
        var rename: String?
        /// A channel file of the test's own instead of a shipped one (`file` is then its name).
        var contents: String?
    }

    func channel(_ shipped: String) -> String { "\(shipped)-\(suffix)" }

    /// `POST /v1/notifications`: the status and the answer.
    func send(_ request: JSONValue) async throws -> (status: Int, body: JSONValue) {
        let response = try await client.execute(
            "/v1/notifications", method: "POST", headers: ["Content-Type": "application/json"], body: JSONWriter.string(request))
        return (response.status, response.json)
    }

    /// Sends and returns the notification id, failing unless it was accepted.
    func accepted(_ request: JSONValue) async throws -> String {
        let (status, body) = try await send(request)
        guard status == 202, let id = body["id"]?.stringValue else { throw HarnessError("not accepted (\(status)): \(body)") }
        return id
    }

    func document(id: String) async throws -> JSONValue {
        try await client.execute("/v1/notifications/\(id)").json
    }

    /// Polls the notification until its first delivery is in `status` (and its attempts are all shown).
    func wait(id: String, for statuses: Set<String>, timeout: Duration = .seconds(60)) async throws -> JSONValue {
        try await eventually(timeout: timeout, "notification \(id) to reach \(statuses.sorted())") {
            let document = try await self.document(id: id)
            guard let status = document.value(atPath: "deliveries.0.status")?.stringValue, statuses.contains(status),
                case .integer(let count)? = document.value(atPath: "deliveries.0.attempt_count"),
                (document.value(atPath: "deliveries.0.attempts")?.arrayValue?.count ?? 0) >= Int(count)
            else { return nil }
            return document
        }
    }

    /// A provider calling the receipts route.
    func receipt(
        _ pathAndQuery: String, method: String = "POST", headers: [String: String] = [:], body: String = ""
    ) async throws -> (status: Int, contentType: String?, body: JSONValue) {
        let response = try await client.execute(pathAndQuery, method: method, headers: headers, body: body, authorized: false)
        return (response.status, response.headers["content-type"], response.json)
    }

    static func with(
        channels: [Channel], secrets: [String: String], _ body: @Sendable (PeerHarness) async throws -> Void
    ) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("herald-peers-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let suffix = "pe" + UUID().uuidString.prefix(6).lowercased()
        let configDirectory = work.appendingPathComponent("config")
        try FileManager.default.createDirectory(at: configDirectory.appendingPathComponent("channels.d"), withIntermediateDirectories: true)
        let root = ProviderHarness.repositoryRoot
        for channel in channels {
            var text = try channel.contents
                ?? String(contentsOf: root.appendingPathComponent("channels.d/\(channel.file)"), encoding: .utf8)
            for (old, new) in channel.replacing {
                guard text.contains(old) else { throw HarnessError("\(channel.file) no longer contains '\(old)'") }
                text = text.replacingOccurrences(of: old, with: new)
            }
            var lines = text.components(separatedBy: "\n")
            if let index = lines.firstIndex(where: { $0.hasPrefix("name: ") }) {
                let name = channel.rename ?? String(lines[index].dropFirst("name: ".count).prefix { !$0.isWhitespace })
                lines[index] = "name: \(name)-\(suffix)"
            }
            let file = channel.rename.map { "\($0).yaml" } ?? channel.file
            try lines.joined(separator: "\n").write(
                to: configDirectory.appendingPathComponent("channels.d/\(file)"), atomically: true, encoding: .utf8)
        }
        try FileManager.default.copyItem(
            at: root.appendingPathComponent("retry-policies.yaml"), to: configDirectory.appendingPathComponent("retry-policies.yaml"))
        let snapshot: ConfigSnapshot
        switch ConfigLoader(directory: configDirectory.path).load() {
        case .success(let loaded): snapshot = loaded
        case .failure(let errors): throw HarnessError("the rewritten configuration does not load: \(errors)")
        }
        let config = ConfigStore(snapshot)
        let resolver = SecretResolver(environment: secrets, secretsDirectory: "")
        let receiptSecret = "itest-receipts-" + UUID().uuidString

        try await TestServers.withDatabase { _ in }  // migrate first
        let logger = TestServers.logger
        let (token, _) = try await TestServers.createKey()
        // The gateway listens on a port chosen here: it is the public URL the workers put in callback URLs.
        let port = try freePort()
        let links = try ReceiptLinks(publicURL: "http://127.0.0.1:\(port)", secret: receiptSecret)
        var gatewayConfiguration = GatewayConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        gatewayConfiguration.port = port
        gatewayConfiguration.relay.pollInterval = .milliseconds(50)
        gatewayConfiguration.allowPrivateTargets = true
        gatewayConfiguration.receiptLinks = links
        gatewayConfiguration.secrets = resolver
        let (gateway, _) = try buildGateway(configuration: gatewayConfiguration, config: config, logger: logger)
        var workerConfiguration = WorkerConfiguration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        workerConfiguration.allowPrivateTargets = true
        workerConfiguration.workerName = "itest-peer-worker"
        workerConfiguration.secrets = resolver
        workerConfiguration.receiptLinks = links
        workerConfiguration.relay.pollInterval = .milliseconds(50)
        let services = ServiceGroup(
            services: [gateway] + (try buildWorker(channels: .all, config: config, configuration: workerConfiguration, logger: logger)),
            logger: logger)
        let client = PlainHTTPClient(baseURL: links.publicURL, token: token)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            do {
                _ = try await eventually("the gateway to be ready") {
                    (try? await client.execute("/readyz"))?.status == 200 ? true : nil
                }
                try await body(PeerHarness(client: client, baseURL: links.publicURL, links: links, suffix: suffix, secrets: secrets))
            } catch {
                await services.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}

/// HTTP to the gateway over a real socket (URLSession), with the test's API key unless told otherwise.
struct PlainHTTPClient: Sendable {
    struct Response: Sendable {
        var status: Int
        /// Lower-cased names.
        var headers: [String: String]
        var body: Data
        var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: body)) ?? .null }
    }

    let baseURL: String
    let token: String

    func execute(
        _ pathAndQuery: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil, authorized: Bool = true
    ) async throws -> Response {
        guard let url = URL(string: baseURL + pathAndQuery) else { throw HarnessError("bad URL \(pathAndQuery)") }
        var request = URLRequest(url: url, timeoutInterval: 20)
        request.httpMethod = method
        if authorized { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw HarnessError("no HTTP answer for \(pathAndQuery)") }
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
        }
        return Response(status: http.statusCode, headers: fields, body: data)
    }
}

/// Runs a Python snippet with arguments and returns what it printed.
func runPython(_ script: String, _ arguments: [String] = []) async throws -> String {
    try await offCooperativePool {
        let pipe = Pipe()
        let process = try startPython(ProviderHarness.python, ["-c", script] + arguments, stdout: pipe)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("python exited with \(process.terminationStatus): \(String(decoding: data, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
