import Foundation
import HeraldCore
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// One partition of the day-partitioned tables (`Migrations.partitionByDay`): the same suffix on
/// `notifications`, `deliveries`, `attempts` and `delivery_events`.
public struct DayPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// `…_pYYYYMMDD`: the notifications accepted on that UTC day.
        case day
        /// `…_before_YYYYMMDD`: everything accepted before that day (the rows from before partitioning).
        case before
    }

    public var kind: Kind
    /// The UTC day in the name, as `YYYYMMDD`.
    public var day: String
    /// The first instant after the partition's notifications (exclusive upper bound).
    public var end: Date

    /// The suffix after the table name: `p20261204` or `before_20261204`.
    public var suffix: String { kind == .day ? "p\(day)" : "before_\(day)" }
    public var description: String { suffix }

    /// Reads a partition of `notifications` from its name; nil for the default partition and
    /// anything else.
    public init?(notificationsPartition name: String) {
        let prefix = "notifications_"
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        let kind: Kind
        let digits: Substring
        if rest.hasPrefix("before_") {
            kind = .before
            digits = rest.dropFirst("before_".count)
        } else if rest.hasPrefix("p") {
            kind = .day
            digits = rest.dropFirst()
        } else {
            return nil
        }
        guard digits.count == 8, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
            let start = UTCDay.start(of: String(digits))
        else { return nil }
        self.kind = kind
        self.day = String(digits)
        self.end = kind == .day ? start.addingTimeInterval(UTCDay.seconds) : start
    }

    public static func < (lhs: DayPartition, rhs: DayPartition) -> Bool {
        (lhs.end, lhs.kind == .before ? 0 : 1) < (rhs.end, rhs.kind == .before ? 0 : 1)
    }
}

/// UTC days as `YYYYMMDD` (partition names) and `YYYY-MM-DD` (SQL dates).
public enum UTCDay {
    static let seconds: TimeInterval = 86_400

    static var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    /// Midnight UTC of the day `instant` falls on.
    public static func start(of instant: Date) -> Date {
        Date(timeIntervalSince1970: (instant.timeIntervalSince1970 / seconds).rounded(.down) * seconds)
    }

    /// Midnight UTC of `YYYYMMDD`; nil unless it names a real day.
    public static func start(of compact: String) -> Date? {
        guard compact.utf8.count == 8, let year = Int(compact.prefix(4)), let month = Int(compact.dropFirst(4).prefix(2)),
            let day = Int(compact.suffix(2))
        else { return nil }
        let components = DateComponents(year: year, month: month, day: day)
        guard let date = calendar.date(from: components), self.compact(date) == compact else { return nil }
        return date
    }

    public static func compact(_ instant: Date) -> String {
        let parts = calendar.dateComponents([.year, .month, .day], from: instant)
        return String(format: "%04d%02d%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// `YYYY-MM-DD`, as SQL's `date` reads it.
    public static func iso(_ instant: Date) -> String {
        let text = compact(instant)
        return "\(text.prefix(4))-\(text.dropFirst(4).prefix(2))-\(text.suffix(2))"
    }
}

/// What retention keeps, as a pure decision.
public enum RetentionPolicy {
    /// The retentions Herald takes (`HERALD_RETENTION_DAYS`, `herald retention --days`).
    public static let allowedDays: ClosedRange<Int> = 1...36_500

    /// The first instant retention keeps: midnight UTC `keepDays` days before `now`'s day. Every
    /// notification accepted in the last `keepDays` full days (and today) is kept.
    public static func cutoff(now: Date, keepDays: Int) -> Date {
        UTCDay.start(of: now).addingTimeInterval(-Double(keepDays) * UTCDay.seconds)
    }

    /// The partitions that hold nothing at or after the cutoff, oldest first.
    public static func expired(_ partitions: [DayPartition], now: Date, keepDays: Int) -> [DayPartition] {
        let cutoff = cutoff(now: now, keepDays: keepDays)
        return partitions.filter { $0.end <= cutoff }.sorted()
    }

    /// The days that should have partitions: today through `ahead` days later (rows never wait for
    /// maintenance to find a partition; the default partition stays empty).
    public static func daysAhead(now: Date, ahead: Int) -> (first: String, last: String) {
        let today = UTCDay.start(of: now)
        return (UTCDay.iso(today), UTCDay.iso(today.addingTimeInterval(Double(ahead) * UTCDay.seconds)))
    }
}

/// What one retention pass did.
public struct RetentionReport: Sendable, Hashable {
    public struct Dropped: Sendable, Hashable {
        public var partition: DayPartition
        /// Rows in the four tables, from the planner's statistics (a count would read them all).
        public var estimatedRows: Int
        public var bytes: Int
        public var seconds: Double
    }

    public struct Held: Sendable, Hashable {
        public var partition: DayPartition
        public var reason: String
        /// The tables were locked (worth another try), rather than the day still needed.
        public var busy = false
    }

    public var partitionsCreated = 0
    public var dropped: [Dropped] = []
    /// Expired days that were kept: open deliveries in them, or the tables were busy.
    public var held: [Held] = []
    public var poisonMessagesDeleted = 0
}

/// Creates the day partitions ahead and drops expired days: `DETACH` + `DROP` of each table's
/// partition, children first, in one short transaction per day.
public struct PartitionStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// "herald-retention" folded into one advisory-lock key: one maintainer at a time.
    static let lockKey: Int64 = 104_101_114_097_108_115

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A lock wait as PostgreSQL's `lock_timeout` reads it (whole milliseconds, at least one).
    static func setting(_ lockTimeout: Duration) -> String { "\(max(1, Int(lockTimeout.timeInterval * 1000)))ms" }

    /// Lock timeout and deadlock: the tables were busy, and the day is worth another try.
    static let busyStates: Set<String> = ["55P03", "40P01"]
    /// Busy, or the day still referenced or depended on: kept for the next pass rather than failing it.
    static let heldStates: Set<String> = busyStates.union(["23503", "2BP01"])

    /// Creates the missing partitions from today to `ahead` days later; returns how many it created.
    /// Creating a partition locks its parent table exclusively: each lock is waited for at most
    /// `lockTimeout`, so that a long query on a parent can't make every insert queue behind the
    /// creation (a day skipped is created by a later pass, days ahead of need).
    public func ensurePartitions(now: Date, ahead: Int, lockTimeout: Duration = .milliseconds(500)) async throws -> Int {
        let days = RetentionPolicy.daysAhead(now: now, ahead: ahead)
        let timeout = Self.setting(lockTimeout)
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                "SELECT set_config('lock_timeout', \(timeout), true), pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
            var created = 0
            for try await count in try await connection.query(
                "SELECT herald_ensure_partitions(\(days.first)::date, \(days.last)::date)", logger: logger
            ).decode(Int.self) { created = count }
            return created
        }
    }

    /// The partitions of the day-partitioned tables (the default one aside).
    public func partitions() async throws -> [DayPartition] {
        var found: [DayPartition] = []
        for try await name in try await client.query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'notifications'::regclass",
            logger: logger
        ).decode(String.self) {
            if let partition = DayPartition(notificationsPartition: name) { found.append(partition) }
        }
        return found.sorted()
    }

    /// Drops one day from every partitioned table, with its idempotency keys, unless a delivery in it
    /// is not in a terminal status (a scheduled send, a retry waiting, a replayed dead letter): then
    /// the day is held and the reason returned. Each lock is waited for at most `lockTimeout`, far
    /// shorter than PostgreSQL's deadlock check: the drop locks four parents one after the other, and
    /// a claim holding one while it waits for another would otherwise wait with it (the writes queue
    /// behind a waiting exclusive lock). A busy day is tried `tries` times, then held.
    public func drop(_ partition: DayPartition, lockTimeout: Duration = .milliseconds(100), tries: Int = 5) async throws -> DropOutcome {
        var outcome = try await dropOnce(partition, lockTimeout: lockTimeout)
        for attempt in 1..<max(1, tries) {
            guard case .held(let held) = outcome, held.busy else { break }
            try await Task.sleep(for: .milliseconds(200 * attempt))
            outcome = try await dropOnce(partition, lockTimeout: lockTimeout)
        }
        return outcome
    }

    private func dropOnce(_ partition: DayPartition, lockTimeout: Duration) async throws -> DropOutcome {
        let suffix = partition.suffix  // digits and a fixed prefix only (DayPartition's parser)
        let open = DeliveryStatus.allCases.filter { !$0.isTerminal }.map(\.rawValue)
        let upper = partition.end
        let lower = partition.kind == .day ? partition.end.addingTimeInterval(-UTCDay.seconds) : nil
        let started = ContinuousClock.now
        let timeout = Self.setting(lockTimeout)
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await connection.query(
                    "SELECT set_config('lock_timeout', \(timeout), true), pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                // The day's deliveries can't change while they are checked (SHARE blocks writes to this
                // partition only: old days see few); the parents are locked only for the drop.
                try await connection.query(PostgresQuery(unsafeSQL: "LOCK TABLE deliveries_\(suffix) IN SHARE MODE"), logger: logger)
                var openCount = 0
                for try await count in try await connection.query(
                    "SELECT count(*)::int8 FROM (SELECT 1 FROM \(unescaped: "deliveries_" + suffix) WHERE status = ANY(\(open)::text[]) LIMIT 1000) AS o",
                    logger: logger
                ).decode(Int.self) { openCount = count }
                if openCount > 0 {
                    throw HeldPartition(reason: "\(openCount == 1000 ? "1000 or more" : String(openCount)) deliveries not yet in a terminal status")
                }
                // The partitioned tables, parents first, from the one list the migration keeps.
                var tables: [String] = []
                for try await table in try await connection.query(
                    "SELECT unnest(herald_partitioned_tables())", logger: logger
                ).decode(String.self) { tables.append(table) }
                var rows = 0, bytes = 0
                let names = tables.map { "'\($0)_\(suffix)'" }.joined(separator: ", ")
                for try await (tuples, size) in try await connection.query(
                    PostgresQuery(unsafeSQL: """
                        SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::int8, coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                        FROM pg_class c WHERE c.relname IN (\(names)) AND c.relkind = 'r'
                        """), logger: logger
                ).decode((Int, Int).self) { (rows, bytes) = (tuples, size) }
                try await connection.query(
                    """
                    DELETE FROM idempotency_keys
                    WHERE notification_id < herald_uuid_floor(\(upper)) AND (\(lower)::timestamptz IS NULL OR notification_id >= herald_uuid_floor(\(lower)))
                    """, logger: logger)
                // One statement: the day's foreign keys only join its own partitions, so nothing else is
                // checked, and the parents are locked exclusively for the catalog change only.
                try await connection.query(
                    PostgresQuery(unsafeSQL: "DROP TABLE " + tables.reversed().map { "\($0)_\(suffix)" }.joined(separator: ", ")),
                    logger: logger)
                return .dropped(.init(partition: partition, estimatedRows: rows, bytes: bytes, seconds: (ContinuousClock.now - started).timeInterval))
            }
        } catch {
            let cause = (error as? PostgresTransactionError)?.closureError ?? error
            if let held = cause as? HeldPartition { return .held(.init(partition: partition, reason: held.reason)) }
            // Busy (lock timeout, deadlock) or still referenced from a later day: kept for the next pass.
            if let failure = cause as? PSQLError, let state = failure.serverInfo?[.sqlState], Self.heldStates.contains(state) {
                return .held(.init(
                    partition: partition, reason: failure.serverInfo?[.message] ?? state, busy: Self.busyStates.contains(state)))
            }
            throw error
        }
    }

    /// One pass: partitions ahead, then (with `keepDays`) the expired days dropped oldest first, and
    /// poison messages older than the cutoff deleted.
    public func run(now: Date, keepDays: Int?, ahead: Int = 7) async throws -> RetentionReport {
        var report = RetentionReport()
        report.partitionsCreated = try await ensurePartitions(now: now, ahead: ahead)
        guard let keepDays else { return report }
        for partition in RetentionPolicy.expired(try await partitions(), now: now, keepDays: keepDays) {
            switch try await drop(partition) {
            case .dropped(let dropped): report.dropped.append(dropped)
            case .held(let held): report.held.append(held)
            }
        }
        let cutoff = RetentionPolicy.cutoff(now: now, keepDays: keepDays)
        for try await count in try await client.query(
            "WITH d AS (DELETE FROM poison_messages WHERE received_at < \(cutoff) RETURNING 1) SELECT count(*)::int8 FROM d",
            logger: logger
        ).decode(Int.self) { report.poisonMessagesDeleted = count }
        return report
    }
}

/// What `PartitionStore.drop(_:)` did with a day.
public enum DropOutcome: Sendable, Hashable {
    case dropped(RetentionReport.Dropped)
    case held(RetentionReport.Held)
}

struct HeldPartition: Error {
    var reason: String
}

/// Keeps the day partitions ahead of the clock and, with a retention, drops the expired days: at
/// start and then every `interval`. Each pass has a deadline; a failed pass is logged and counted,
/// and the next one tries again.
public final class RetentionService: Service, Sendable {
    private let store: PartitionStore
    private let keepDays: Int?
    private let interval: Duration
    private let logger: Logger
    private let droppedDays = Counter(label: "herald_retention_partitions_dropped_total")
    private let heldDays = Gauge(label: "herald_retention_partitions_held")
    private let failures = Counter(label: "herald_retention_failures_total")

    public init(store: PartitionStore, keepDays: Int?, interval: Duration = .seconds(3600), logger: Logger) {
        self.store = store
        self.keepDays = keepDays
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let report = try await withDeadline(.seconds(300), "retention pass") { [store, keepDays] in
                    try await store.run(now: Date(), keepDays: keepDays)
                }
                droppedDays.increment(by: report.dropped.count)
                heldDays.record(report.held.count)
                for dropped in report.dropped {
                    logger.notice("retention dropped a day", metadata: [
                        "partition": "\(dropped.partition)", "rows": "\(dropped.estimatedRows)", "bytes": "\(dropped.bytes)",
                        "seconds": "\(dropped.seconds)",
                    ])
                }
                for held in report.held {
                    logger.warning("retention kept an expired day", metadata: ["partition": "\(held.partition)", "reason": "\(held.reason)"])
                }
                if report.partitionsCreated > 0 {
                    logger.info("partitions created", metadata: ["count": "\(report.partitionsCreated)"])
                }
            } catch {
                failures.increment()
                logger.error("retention pass failed", metadata: ["error": "\(StoreFailure.describe(error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}
