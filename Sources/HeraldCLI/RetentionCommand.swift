import ArgumentParser
import Foundation
import HeraldStore

/// `herald retention`: one maintenance pass now, as the gateway runs it every hour: the day
/// partitions ahead, then (with a retention) the expired days dropped whole.
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Create the day partitions ahead and drop the days older than the retention.",
        discussion: """
            Days are UTC days of acceptance; a day is dropped with its deliveries, attempts, receipts and \
            idempotency keys, unless one of its deliveries is not yet in a terminal status.
            """)

    @Option(help: "Full days to keep (default HERALD_RETENTION_DAYS; unset: drop nothing).")
    var days: Int?

    @Flag(help: "Only list the days that would be dropped.")
    var dryRun = false

    func validate() throws {
        let allowed = RetentionPolicy.allowedDays
        if let days, !allowed.contains(days) {
            throw ValidationError("--days must be from \(allowed.lowerBound) to \(allowed.upperBound)")
        }
    }

    func run() async throws {
        let keepDays = try days ?? HeraldEnvironment().retentionDays()
        let dryRun = self.dryRun
        let lines = try await withStore(role: "retention") { store in
            let partitions = PartitionStore(client: store.client, logger: store.logger)
            let now = Date()
            if dryRun {
                guard let keepDays else { return ["no retention set (--days or HERALD_RETENTION_DAYS): nothing would be dropped"] }
                let expired = RetentionPolicy.expired(try await partitions.partitions(), now: now, keepDays: keepDays)
                return expired.isEmpty ? ["nothing to drop"] : expired.map { "would drop \($0)" }
            }
            let report = try await partitions.run(now: now, keepDays: keepDays)
            var lines = ["partitions created: \(report.partitionsCreated)"]
            lines += report.dropped.map {
                "dropped \($0.partition): ~\($0.estimatedRows) rows, \($0.bytes / 1_048_576) MiB, \(String(format: "%.3f", $0.seconds)) s"
            }
            lines += report.held.map { "kept \($0.partition): \($0.reason)" }
            if keepDays != nil { lines.append("poison messages deleted: \(report.poisonMessagesDeleted)") }
            return lines
        }
        for line in lines { print(line) }
    }
}
