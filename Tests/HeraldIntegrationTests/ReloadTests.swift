import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldStore
import Logging
import ServiceLifecycle
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `herald` process started by a test. Never blocks a Swift concurrency thread: exit is awaited
/// through the termination handler.
final class HeraldProcess: Sendable {
    let process: Process
    let logPath: String
    private let exited: AsyncStream<Int32>

    init(arguments: [String], environment: [String: String], name: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        logPath = NSTemporaryDirectory() + "herald-\(name)-\(UUID().uuidString).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        exited = stream
        process.terminationHandler = { continuation.yield($0.terminationStatus); continuation.finish() }
        try process.run()
        self.process = process
    }

    /// The `herald` built beside this test bundle (same build folder), or `HERALD_BIN`.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["HERALD_BIN"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("herald").path
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then waits for the exit (graceful shutdown).
    func stop() async -> Int32? {
        if process.isRunning { signal(SIGTERM) }
        for await status in exited { return status }
        return nil
    }
}

/// Configuration as code, live: the real `herald gateway` and `herald worker --all` processes pick up
/// a channel file dropped into `channels.d/` on SIGHUP, without a restart; a broken file leaves the
/// previous configuration serving.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ReloadTests {
    static func channelFile(name: String) -> String {
        """
        name: \(name)
        category: webhook
        recipient: webhook_url
        concurrency: 4
        timeout: 5s
        providers:
          - name: receiver
            kind: http
            url: "{{to.webhook_url}}"
            headers: {X-Channel: "\(name)"}
            body:
              json:
                channel: "\(name)"
                text: "{{message.text}}"
                attempt: {$value: attempt}

        """
    }

    @Test func aChannelFileDroppedInIsServedAfterSIGHUPAndABrokenOneChangesNothing() async throws {
        try await TestServers.withDatabase { _ in }  // migrated
        let prefix = TestServers.uniqueChannelName("reload")
        let directory = NSTemporaryDirectory() + "herald-reload-\(UUID().uuidString)"
        let channels = directory + "/channels.d"
        try FileManager.default.createDirectory(atPath: channels, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.channelFile(name: "\(prefix)-alpha").write(toFile: channels + "/alpha.yaml", atomically: true, encoding: .utf8)

        let port = try freePort()
        let environment = [
            "HERALD_CONFIG_DIR": directory, "HERALD_HTTP_PORT": "\(port)", "HERALD_POSTGRES_URL": TestServers.postgresURL,
            "HERALD_AMQP_URL": TestServers.amqpURL, "HERALD_ALLOW_PRIVATE_TARGETS": "1", "HERALD_LOG_FORMAT": "text",
        ]
        let receiver = WebhookReceiver()
        let runtime = CurlRuntime(logger: TestServers.logger)
        let base = "http://127.0.0.1:\(port)"
        let (token, _) = try await TestServers.createKey()

        @Sendable func request(_ method: String, _ path: String, _ body: String = "") async throws -> (Int, JSONValue) {
            let response = try await runtime.execute(HTTPRequest(
                method: method, url: base + path,
                headers: [HTTPHeaderField("Content-Type", "application/json"), HTTPHeaderField("Authorization", "Bearer \(token)")],
                body: Array(body.utf8), timeout: .seconds(5), restrictToPublicAddresses: false))
            let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(response.body))) ?? .null
            return (response.status, json)
        }
        @Sendable func send(_ channel: String) async throws -> (Int, JSONValue) {
            try await request("POST", "/v1/notifications", """
                {"channel": "\(channel)", "to": {"webhook_url": "\(receiver.url)"}, "message": {"text": "via \(channel)"}}
                """)
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            group.addTask { try await receiver.application.run() }
            try await receiver.waitUntilListening()
            let gateway = try HeraldProcess(arguments: ["gateway"], environment: environment, name: "gateway")
            let worker = try HeraldProcess(arguments: ["worker", "--all"], environment: environment, name: "worker")
            do {
                _ = try await eventually("the gateway to be ready") {
                    (try? await request("GET", "/readyz"))?.0 == 200 ? true : nil
                }
                // Before: beta is unknown.
                let before = try await send("\(prefix)-beta")
                #expect(before.0 == 422)
                #expect(before.1.value(atPath: "errors.0.field") == "channel")

                // Both processes must be listening for SIGHUP (and the worker consuming) before the signal.
                _ = try await eventually("both processes to trap SIGHUP") {
                    gateway.log.contains("configuration reloads on SIGHUP") && worker.log.contains("configuration reloads on SIGHUP")
                        && worker.log.contains("worker started") ? true : nil
                }
                // Drop the file in, SIGHUP both processes.
                try Self.channelFile(name: "\(prefix)-beta").write(toFile: channels + "/beta.yaml", atomically: true, encoding: .utf8)
                gateway.signal(SIGHUP)
                worker.signal(SIGHUP)
                let accepted = try await eventually("the gateway to accept the new channel") {
                    let response = try await send("\(prefix)-beta")
                    return response.0 == 202 ? response.1 : nil
                }
                let id = try #require(accepted["id"]?.stringValue)
                let version = try #require(accepted["config_version"]?.stringValue)
                let delivered = try await eventually("the new channel's delivery to be sent") {
                    let (_, document) = try await request("GET", "/v1/notifications/\(id)")
                    return document.value(atPath: "deliveries.0.status") == "sent" ? document : nil
                }
                #expect(delivered["config_version"] == .string(version))
                #expect(delivered.value(atPath: "deliveries.0.attempts.0.provider") == "receiver")
                let received = try #require(receiver.requests.last)
                #expect(received.headers["x-channel"] == "\(prefix)-beta")
                let payload = try JSONDecoder().decode(JSONValue.self, from: Data(received.body))
                #expect(payload == ["channel": .string("\(prefix)-beta"), "text": .string("via \(prefix)-beta"), "attempt": 1])

                // A broken file: the reload is refused, the previous configuration keeps serving.
                try "name: \(prefix)-gamma\nrecipient: [webhook_url\n".write(
                    toFile: channels + "/gamma.yaml", atomically: true, encoding: .utf8)
                gateway.signal(SIGHUP)
                _ = try await eventually("the refused reload to be counted") {
                    let response = try await runtime.execute(HTTPRequest(url: base + "/metrics", restrictToPublicAddresses: false))
                    return String(decoding: response.body, as: UTF8.self).contains("herald_config_reload_failures_total 1") ? true : nil
                }
                #expect(try await send("\(prefix)-beta").0 == 202)
                #expect(try await send("\(prefix)-gamma").0 == 422)
                #expect(gateway.log.contains("gamma.yaml:3:1"))
            } catch {
                Issue.record("gateway log:\n\(gateway.log.suffix(3000))\nworker log:\n\(worker.log.suffix(3000))")
                throw error
            }
            #expect(await gateway.stop() == 0)
            #expect(await worker.stop() == 0)
            group.cancelAll()
        }
    }
}
