import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Synchronization

/// A local webhook receiver for the examples and the load script: answers every POST, counts what
/// it got, and can fail the first requests to show retries.
struct SinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sink", abstract: "Run a local webhook receiver (examples, load tests).")

    @Option(help: "Address to listen on (0.0.0.0 in a container).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port: Int = 9099

    @Option(help: "Answer 500 to this many requests first.")
    var failFirst: Int = 0

    @Flag(help: "Don't print each request.")
    var quiet = false

    func run() async throws {
        let logger = Logger(label: "herald.sink")
        let received = Mutex(0)
        let failFirst = failFirst
        let quiet = quiet
        let router = Router()
        router.post("/**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let count = received.withLock { count in
                count += 1
                return count
            }
            if !quiet {
                // Written straight to the file descriptor (not print's buffer), so `scripts/run` shows it at once.
                let line = "#\(count) \(request.uri.path) webhook-id=\(request.headers[.init("webhook-id")!] ?? "-") \(String(buffer: body))\n"
                FileHandle.standardOutput.write(Data(line.utf8))
            }
            return Response(status: count <= failFirst ? .internalServerError : .ok)
        }
        router.get("/stats") { _, _ in "{\"received\": \(received.withLock { $0 })}\n" }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "herald-sink"),
            logger: logger)
        try await app.runService()
    }
}
