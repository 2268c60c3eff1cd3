// herald-bench: benchmarks with reports. Each figure is compared with a baseline measured in the same
// process and run, so the ratios hold across machines even when the absolute times don't.
//
//   swift run -c release herald-bench [config-reload] [--iterations N]
//   swift run -c release herald-bench audit [--iterations N] [--attempts N] [--postgres-url URL] [--report PATH]
import Foundation
import HeraldConfig
import HeraldCore
import Logging

struct Measurement {
    var name: String
    var samples: [Duration]

    func percentile(_ p: Double) -> Duration {
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    var median: Duration { percentile(0.5) }

    static func format(_ duration: Duration) -> String {
        String(format: "%.2f ms", Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1000)
    }
}

func measure(_ name: String, iterations: Int, _ body: () throws -> Void) rethrows -> Measurement {
    let clock = ContinuousClock()
    for _ in 0..<max(1, iterations / 10) { try body() }  // warm-up
    var samples: [Duration] = []
    for _ in 0..<iterations { samples.append(try clock.measure(body)) }
    return Measurement(name: name, samples: samples)
}

/// A configuration directory like a real deployment's: `count` HTTP channels with auth, JSON bodies
/// and response rules, a template and routing rules.
func makeConfigDirectory(channels count: Int) throws -> String {
    let directory = NSTemporaryDirectory() + "herald-bench-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/channels.d", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: directory + "/templates", withIntermediateDirectories: true)
    for index in 0..<count {
        try """
            name: channel-\(index)
            category: sms
            recipient: phone
            concurrency: 16
            rate_limit: 30/s
            retry: standard
            timeout: 10s
            providers:
              - name: primary
                kind: http
                url: "https://api.example.com/v1/accounts/{{secrets.ACCOUNT}}/messages"
                headers: {Accept: application/json, X-Request: "{{delivery_id}}"}
                auth: {type: basic, username: "{{secrets.ACCOUNT}}", password: "{{secrets.TOKEN}}"}
                body:
                  json:
                    to: "{{to.phone}}"
                    text: "{{message.text}}"
                    meta: {attempt: {$value: attempt}, tags: [herald, "channel-\(index)"]}
                response: {success: [200-299], transient: [408, 429, 500-599], message_id: sid}
              - name: secondary
                kind: http
                url: "https://backup.example.com/send"
                auth: {type: bearer, token: "{{secrets.BACKUP}}"}
                body: {form: {To: "{{to.phone}}", Body: "{{message.text}}"}}

            """.write(toFile: directory + "/channels.d/channel-\(index).yaml", atomically: true, encoding: .utf8)
    }
    try """
        id: hello
        default_locale: en
        locales:
          en: {sms: {text: "Hello {{data.name}}"}, email: {subject: "Hi {{data.name}}", html: "<p>{{data.name}}</p>"}}
          ru: {sms: {text: "Привет, {{data.name}}"}}

        """.write(toFile: directory + "/templates/hello.yaml", atomically: true, encoding: .utf8)
    try """
        rules:
          - {name: big, match: {data.amount: {$gt: 1000}}, channels: [channel-0], strategy: fallback}
          - {name: rest, match: {}, channels: [channel-\(count - 1)]}

        """.write(toFile: directory + "/routing.yaml", atomically: true, encoding: .utf8)
    return directory
}

func configReload(iterations: Int) throws -> String {
    let baselineDirectory = try makeConfigDirectory(channels: 1)
    let directory = try makeConfigDirectory(channels: 100)
    defer {
        try? FileManager.default.removeItem(atPath: baselineDirectory)
        try? FileManager.default.removeItem(atPath: directory)
    }
    func load(_ path: String) throws {
        guard case .success(let snapshot) = ConfigLoader(directory: path).load() else {
            throw NSError(domain: "bench", code: 1, userInfo: [NSLocalizedDescriptionKey: "the benchmark configuration is invalid"])
        }
        precondition(!snapshot.registry.names.isEmpty)
    }
    let baseline = try measure("load 1 channel file", iterations: iterations) { try load(baselineDirectory) }
    let hundred = try measure("load 100 channel files", iterations: iterations) { try load(directory) }
    let ratio = Double(hundred.median.components.attoseconds + hundred.median.components.seconds * 1_000_000_000_000_000_000)
        / Double(baseline.median.components.attoseconds + baseline.median.components.seconds * 1_000_000_000_000_000_000)
    let goal = Duration.milliseconds(100)
    var lines = ["config-reload (\(iterations) iterations each; a reload is load + validate + template compile + swap)"]
    for measurement in [baseline, hundred] {
        lines.append(
            "  \(measurement.name.padding(toLength: 24, withPad: " ", startingAt: 0)) p50 \(Measurement.format(measurement.median))"
                + "  p90 \(Measurement.format(measurement.percentile(0.9)))  p99 \(Measurement.format(measurement.percentile(0.99)))")
    }
    lines.append(String(format: "  ratio 100 files / 1 file (p50): %.1fx", ratio))
    lines.append("  goal: 100 files ≤ \(Measurement.format(goal)) at p99: \(hundred.percentile(0.99) <= goal ? "met" : "NOT MET")")
    return lines.joined(separator: "\n")
}

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
}
#if DEBUG
print("note: a debug build; run `swift run -c release herald-bench` for figures worth quoting")
#endif
do {
    if arguments.first == "audit" {
        var benchmark = AuditBenchmark()
        benchmark.iterations = option("--iterations").flatMap(Int.init) ?? benchmark.iterations
        benchmark.attempts = option("--attempts").flatMap(Int.init) ?? benchmark.attempts
        benchmark.url = option("--postgres-url") ?? benchmark.url
        benchmark.report = option("--report") ?? benchmark.report
        var logger = Logger(label: "herald.bench")
        logger.logLevel = .warning
        print(try await benchmark.run(logger: logger))
    } else {
        print(try configReload(iterations: option("--iterations").flatMap(Int.init) ?? 50))
    }
} catch {
    print("benchmark failed: \(error)")
    exit(1)
}
