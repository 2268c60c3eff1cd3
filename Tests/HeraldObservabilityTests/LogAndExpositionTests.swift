import Foundation
import HeraldCore
import HeraldObservability
import Logging
import Metrics
import Prometheus
import Testing

@Suite("JSONLogHandler")
struct JSONLogHandlerTests {
    static func line(_ level: Logger.Level = .info, _ message: String, _ metadata: Logger.Metadata, handler: Logger.Metadata = [:]) throws
        -> [String: JSONValue]
    {
        let event = LogEvent(
            level: level, message: "\(message)", metadata: metadata, source: nil, file: "Herald/Sources/HeraldWorker/X.swift",
            function: "f()", line: 42)
        let text = JSONLogHandler.line(
            event: event, handlerMetadata: handler, label: "herald.worker", service: "herald-worker",
            now: Date(timeIntervalSince1970: 1_764_000_000.25))
        #expect(!text.contains("\n"), "one line per event")
        guard case .object(let fields) = try JSONParser.parse(Array(text.utf8)) else {
            Issue.record("not a JSON object: \(text)")
            return [:]
        }
        return fields
    }

    @Test func eCSFieldsWithTheirTypes() throws {
        let fields = try Self.line(.warning, "delivery attempt failed", [
            "event.duration": .stringConvertible(Int64(1_500_000)), "herald.attempt": .stringConvertible(2),
            "http.response.status_code": .stringConvertible(503), "event.action": "delivery-attempt",
            "herald.ok": .stringConvertible(false), "ratio": .stringConvertible(0.25),
        ])
        #expect(fields["@timestamp"] == .string("2025-11-24T16:00:00.250Z"))
        #expect(fields["log.level"] == .string("warning"))
        #expect(fields["log.logger"] == .string("herald.worker"))
        #expect(fields["message"] == .string("delivery attempt failed"))
        #expect(fields["service.name"] == .string("herald-worker"))
        #expect(fields["log.origin.file.name"] == .string("X.swift"))
        #expect(fields["log.origin.file.line"] == .integer(42))
        #expect(fields["event.duration"] == .integer(1_500_000))
        #expect(fields["herald.attempt"] == .integer(2))
        #expect(fields["http.response.status_code"] == .integer(503))
        #expect(fields["herald.ok"] == .bool(false))
        #expect(fields["ratio"] == .double(0.25))
        #expect(fields["event.action"] == .string("delivery-attempt"))
    }

    @Test func structuredValuesStayStructured() throws {
        let fields = try Self.line(.error, "configuration reload refused", [
            "config.errors": .array(["channels.d/a.yaml:3:5: unknown key", "routing.yaml:1:1: bad"]),
            "nested": .dictionary(["count": .stringConvertible(3), "name": "x"]),
        ])
        #expect(fields["config.errors"] == .array([.string("channels.d/a.yaml:3:5: unknown key"), .string("routing.yaml:1:1: bad")]))
        #expect(fields["nested"] == .object(["count": .integer(3), "name": .string("x")]))
    }

    @Test func aPlainErrorBecomesErrorMessageAndTheEventMetadataWins() throws {
        let fields = try Self.line(.error, "failed", ["error": "connection refused", "herald.channel": "sms"], handler: ["herald.channel": "email"])
        #expect(fields["error.message"] == .string("connection refused"))
        #expect(fields["error"] == nil, "ECS has error as an object: a string would clash in the index")
        #expect(fields["herald.channel"] == .string("sms"))
    }

    @Test func textThatNeedsEscapingIsStillOneValidLine() throws {
        let fields = try Self.line(.info, "quote \" backslash \\ newline \n tab \t nul \u{0}", ["k": "line1\nline2 \u{1F600}"])
        #expect(fields["message"] == .string("quote \" backslash \\ newline \n tab \t nul \u{0}"))
        #expect(fields["k"] == .string("line1\nline2 \u{1F600}"))
    }
}

@Suite("Metrics exposition")
struct MetricsExpositionTests {
    /// Every series the sources create is described in the catalogue: a new one without a help text
    /// fails here, before `promtool check metrics` sees "(undocumented)" on a live process.
    @Test func everySeriesInTheSourcesHasAHelpText() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let pattern = try Regex(#"(?:Counter|FloatingPointCounter|Timer|Gauge|Meter|Recorder)\(\s*label:\s*"([a-z_:][a-z0-9_:]*)""#)
        var names = Set<String>()
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift" else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: pattern) {
                if let name = match.output[1].substring { names.insert(String(name)) }
            }
        }
        #expect(names.count > 15, "the scan found the series (\(names.count))")
        let undocumented = names.filter { MetricCatalogue.entries[$0] == nil }.sorted()
        #expect(undocumented.isEmpty, "add these to MetricCatalogue: \(undocumented)")
    }

    @Test func everyFamilyHasHelpThenTypeAndTheProcessSeries() throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        factory.makeCounter(label: "herald_attempts_total", dimensions: [("channel", "sms"), ("outcome", "success")]).increment(by: 3)
        factory.makeTimer(label: "herald_accept_duration_seconds", dimensions: []).recordNanoseconds(2_000_000)
        factory.makeMeter(label: "herald_attempts_in_flight", dimensions: [("channel", "sms")]).set(Int64(2))
        let text = MetricsExposition(registry: registry, role: "worker", configVersion: { #"v"1\2"# }).text()
        let lines = text.split(separator: "\n")
        for (index, line) in lines.enumerated() where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(index > 0 && lines[index - 1].hasPrefix("# HELP \(name) "), "HELP before TYPE of \(name)")
            #expect(!lines[index - 1].contains("(undocumented)"), "\(name) has a help text")
        }
        #expect(text.contains(#"herald_attempts_total{channel="sms",outcome="success"} 3"#))
        #expect(text.contains("# TYPE herald_accept_duration_seconds histogram"))
        #expect(text.contains(#"herald_config_info{version="v\"1\\2",role="worker"} 1"#))
        let samples = Dictionary(lines.filter { $0.hasPrefix("process_") }.map {
            let parts = $0.split(separator: " ")
            return (String(parts[0]), Double(parts[1]) ?? -1)
        }, uniquingKeysWith: { first, _ in first })
        #expect((samples["process_resident_memory_bytes"] ?? 0) > 1_000_000)
        #expect((samples["process_open_fds"] ?? 0) >= 3)
        #expect((samples["process_max_fds"] ?? 0) >= (samples["process_open_fds"] ?? 0))
        #expect((samples["process_start_time_seconds"] ?? 0) > 1_600_000_000)
        #expect((samples["process_start_time_seconds"] ?? .infinity) <= Date().timeIntervalSince1970)
        #expect(samples["process_cpu_seconds_total"] != nil)
    }

    /// promtool (Prometheus 2.42, installed by scripts/install-deps) accepts the exposition.
    @Test func promtoolAcceptsTheExposition() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        factory.makeCounter(label: "herald_http_requests_total", dimensions: [("method", "POST"), ("route", "/v1/notifications"), ("status", "202")])
            .increment(by: 1)
        factory.makeTimer(label: "herald_provider_call_duration_seconds", dimensions: [("channel", "sms"), ("provider", "kannel")])
            .recordNanoseconds(40_000_000)
        factory.makeRecorder(label: "herald_queue_messages_ready", dimensions: [("channel", "sms")], aggregate: false).record(Int64(7))
        let text = MetricsExposition(registry: registry, role: "gateway", configVersion: { "abc" }).text()
        let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try #require(promtool, "promtool is not installed: run scripts/install-deps (Debian package prometheus)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        // Waited for on a thread of its own: blocking a cooperative thread (two here) holds up every
        // other test's tasks, deadlines and timers included.
        let report = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                continuation.resume(returning: text)
            }
        }
        #expect(process.terminationStatus == 0, "promtool check metrics: \(report)\n\(text)")
    }
}
