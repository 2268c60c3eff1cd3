import Foundation
import HeraldCore
import HeraldFilter
import HeraldStore
import Logging
import PostgresNIO

/// `herald-bench audit`: 1,000,000 attempts (with their deliveries and notifications) in a database
/// of their own, then each query shape of the audit API ~200 times through `AuditStore`, with and
/// without migration 5's indexes; writes a Markdown report.
struct AuditBenchmark {
    var url = "postgres://postgres@127.0.0.1:15432/herald_audit_bench"
    var attempts = 1_000_000
    var iterations = 200
    var report = "docs/audit-benchmark.md"

    static let tenants = ["acme", "globex", "initech", "umbrella", "hooli"]
    static let channels = ["sms", "email", "webhook", "push", "slack", "telegram", "whatsapp", "teams", "discord", "matrix"]
    /// The instant the data ends at (the newest rows); it spans the 30 days before.
    static let end = "2026-12-01T00:00:00Z"
    static let migration5 = [
        "attempts_audit_started", "attempts_audit_channel", "attempts_audit_outcome", "deliveries_audit_created",
        "deliveries_audit_status", "deliveries_audit_channel", "notifications_audit_metadata",
    ]

    struct Shape: Sendable {
        var name: String
        var selective: Bool
        /// A request body for iteration `i` (parameters vary, so no two runs are the same query).
        var body: @Sendable (Int) -> JSONValue
    }

    static func day(_ offset: Int) -> String {
        Timestamp.string(Timestamp.parse(end)!.addingTimeInterval(-Double(offset) * 86_400))
    }

    static let shapes: [Shape] = [
        Shape(name: "attempts by channel + 1-day range", selective: true) { i in
            ["collection": "attempts", "sort": ["started_at": -1],
             "filter": ["channel": .string(channels[i % channels.count]),
                        "started_at": ["$gte": .string(day(i % 29 + 1)), "$lt": .string(day(i % 29))]]]
        },
        Shape(name: "attempts outcome ≠ success + 1-day range", selective: true) { i in
            ["collection": "attempts", "sort": ["started_at": -1],
             "filter": ["outcome": ["$ne": "success"], "started_at": ["$gte": .string(day(i % 29 + 1)), "$lt": .string(day(i % 29))]]]
        },
        Shape(name: "attempts by a rare outcome (1–2%)", selective: true) { i in
            ["collection": "attempts", "filter": ["outcome": .string(["ambiguous", "permanent_failure"][i % 2])]]
        },
        Shape(name: "deliveries by channel", selective: true) { i in
            ["collection": "deliveries", "filter": ["channel": .string(channels[i % channels.count])]]
        },
        Shape(name: "deliveries by status", selective: true) { i in
            ["collection": "deliveries", "sort": ["updated_at": -1],
             "filter": ["status": .string(["failed", "retrying", "queued", "cancelled"][i % 4])]]
        },
        Shape(name: "notifications by metadata field", selective: true) { i in
            ["collection": "notifications", "filter": ["metadata.customer": .string("cust-\(i * 37 % 20_000)")]]
        },
        Shape(name: "attempts, 2nd page by cursor (channel + range)", selective: true) { i in
            ["collection": "attempts", "sort": ["started_at": -1],
             "filter": ["channel": .string(channels[i % channels.count]), "started_at": ["$gte": .string(day(i % 29 + 1))]]]
        },
        Shape(name: "non-selective: outcome = success, newest first", selective: false) { _ in
            ["collection": "attempts", "filter": ["outcome": "success"]]
        },
        Shape(name: "non-selective: duration_ms > 100 (no index)", selective: false) { _ in
            ["collection": "attempts", "filter": ["duration_ms": ["$gt": 100]]]
        },
    ]

    func run(logger: Logger) async throws -> String {
        try await ensureDatabase(logger: logger)
        let client = PostgresClient(configuration: try .herald(url: url, connections: 4, statementTimeout: .seconds(600)), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            try await Migrations.migrate(client: client, logger: logger)
            let loaded = try await load(client, logger: logger)
            let store = AuditStore(client: client, logger: logger)
            var results: [(Shape, Measurement, String)] = []
            for shape in Self.shapes {
                let measurement = try await measure(shape, store: store, iterations: iterations)
                results.append((shape, measurement, try await plan(shape, client: client)))
            }
            // The same shapes without migration 5's indexes, to show what they buy.
            for index in Self.migration5 { try await client.query(PostgresQuery(unsafeSQL: "DROP INDEX \(index)")) }
            var without: [Measurement] = []
            do {
                for shape in Self.shapes {
                    without.append(try await measure(shape, store: store, iterations: max(5, iterations / 20)))
                }
            } catch {
                try await restoreIndexes(client)
                throw error
            }
            try await restoreIndexes(client)
            let facts = try await machineFacts(client)
            let text = Self.markdown(results: results, without: without, facts: facts, loaded: loaded, iterations: iterations)
            try text.write(toFile: report, atomically: true, encoding: .utf8)
            return text
        }
    }

    func restoreIndexes(_ client: PostgresClient) async throws {
        let statements = Migrations.all.first { $0.version == 5 }!.statements
        for statement in statements { try await client.query(PostgresQuery(unsafeSQL: statement)) }
        try await client.query("ANALYZE")
    }

    /// Creates the benchmark's database when missing (never touching any other).
    func ensureDatabase(logger: Logger) async throws {
        guard var components = URLComponents(string: url) else { throw BenchError("bad URL \(url)") }
        let name = components.path.split(separator: "/").first.map(String.init) ?? ""
        guard name.hasPrefix("herald_audit_bench") else { throw BenchError("the benchmark only uses a database named herald_audit_bench…") }
        components.path = "/postgres"
        let admin = PostgresClient(configuration: try .init(url: components.string!), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await admin.run() }
            defer { group.cancelAll() }
            var exists = false
            for try await _ in try await admin.query("SELECT 1 FROM pg_database WHERE datname = \(name)").decode(Int.self) { exists = true }
            if !exists { try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)")) }
        }
    }

    /// Loads the rows unless they are there already; returns the row counts.
    func load(_ client: PostgresClient, logger: Logger) async throws -> [String: Int] {
        var count = 0
        for try await n in try await client.query("SELECT count(*)::int8 FROM attempts").decode(Int.self) { count = n }
        let deliveries = attempts * 4 / 5  // 1.25 attempts per delivery: every delivery one, a quarter a second
        if count != attempts {
            print("loading \(attempts) attempts, \(deliveries) deliveries and notifications …")
            let start = ContinuousClock.now
            try await client.query(
                "TRUNCATE attempts, delivery_events, outbox, idempotency_keys, deliveries, notifications")
            // Day partitions for the 30 days of data (migration 9 keys them by the UUIDv7 ids' instant).
            try await client.query(PostgresQuery(unsafeSQL: """
                SELECT herald_ensure_partitions(('\(Self.end)'::timestamptz - interval '31 days')::date, '\(Self.end)'::date)
                """))
            // Every value is a function of the row number (hashint4 spreads it), so loads are reproducible.
            let tenant = "(ARRAY['\(Self.tenants.joined(separator: "','"))'])[CASE WHEN abs(hashint4(i)) % 100 < 40 THEN 1 "
                + "WHEN abs(hashint4(i)) % 100 < 65 THEN 2 WHEN abs(hashint4(i)) % 100 < 80 THEN 3 "
                + "WHEN abs(hashint4(i)) % 100 < 90 THEN 4 ELSE 5 END]"
            // Channels are skewed: sms and email carry most.
            let channel = "(ARRAY['\(Self.channels.joined(separator: "','"))'])[1 + floor(10 * power((abs(hashint4(i + 7)) % 1000) / 1000.0, 2))::int]"
            let created = "('\(Self.end)'::timestamptz - (i::float8 / \(deliveries) * 30 * 86400) * interval '1 second')"
            // A UUIDv7 of the row's instant (as Herald makes them: a notification's deliveries share it), its
            // other bits from the row number: the rows land in their day's partitions.
            func id(_ kind: String) -> String {
                "(lpad(to_hex(floor(extract(epoch FROM \(created)) * 1000)::bigint), 12, '0') || '7' "
                    + "|| substr(md5('\(kind)' || i), 1, 3) || '8' || substr(md5('\(kind)' || i), 4, 15))::uuid"
            }
            try await client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO notifications (id, tenant, created_at, config_version, request)
                SELECT \(id("n")), \(tenant), \(created), 'v1', jsonb_build_object(
                    'channel', \(channel), 'to', jsonb_build_object('phone', '+1555' || lpad((i % 10000000)::text, 7, '0')),
                    'template', 'welcome', 'data', jsonb_build_object('name', 'user ' || i),
                    'metadata', jsonb_build_object('customer', 'cust-' || (abs(hashint4(i + 3)) % 20000),
                        'campaign', 'campaign-' || (i % 50), 'plan', (ARRAY['free','pro','enterprise'])[1 + i % 3]))
                FROM generate_series(1, \(deliveries)) AS i
                """))
            try await client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO deliveries (id, notification_id, tenant, channel, status, attempt_count, last_error, created_at, updated_at)
                SELECT \(id("d")), \(id("n")), \(tenant), \(channel), s.status,
                    CASE WHEN i <= \(attempts - deliveries) THEN 2 ELSE 1 END,
                    CASE WHEN s.status IN ('failed', 'retrying') THEN 'HTTP 503 from provider' END,
                    \(created), \(created) + (abs(hashint4(i + 11)) % 600) * interval '1 second'
                FROM generate_series(1, \(deliveries)) AS i,
                    LATERAL (SELECT CASE WHEN abs(hashint4(i + 5)) % 1000 < 900 THEN 'sent' WHEN abs(hashint4(i + 5)) % 1000 < 940 THEN 'failed'
                        WHEN abs(hashint4(i + 5)) % 1000 < 960 THEN 'retrying' WHEN abs(hashint4(i + 5)) % 1000 < 980 THEN 'queued'
                        WHEN abs(hashint4(i + 5)) % 1000 < 990 THEN 'cancelled' ELSE 'expired' END AS status) AS s
                """))
            try await client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO attempts (delivery_id, notification_id, number, started_at, finished_at, outcome, http_status, error,
                    worker, provider, channel, tenant)
                SELECT \(id("d")), \(id("n")), a.number, a.started, a.started + (20 + abs(hashint4(j)) % 900) * interval '1 millisecond',
                    o.outcome, CASE o.outcome WHEN 'success' THEN 200 WHEN 'transient_failure' THEN 503 WHEN 'permanent_failure' THEN 400 END,
                    CASE WHEN o.outcome <> 'success' THEN 'provider said no' END,
                    'worker-' || (j % 4), 'primary', \(channel), \(tenant)
                FROM generate_series(1, \(attempts)) AS j,
                    LATERAL (SELECT (j - 1) % \(deliveries) + 1 AS i) AS d,
                    LATERAL (SELECT (j - 1) / \(deliveries) + 1 AS number, \(created) + ((j - 1) / \(deliveries)) * interval '30 seconds' AS started) AS a,
                    LATERAL (SELECT CASE WHEN abs(hashint4(j + 13)) % 100 < 92 THEN 'success' WHEN abs(hashint4(j + 13)) % 100 < 97 THEN 'transient_failure'
                        WHEN abs(hashint4(j + 13)) % 100 < 99 THEN 'permanent_failure' ELSE 'ambiguous' END AS outcome) AS o
                """))
            try await client.query("ANALYZE")
            print("loaded in \(ContinuousClock.now - start)")
        }
        var counts: [String: Int] = [:]
        for table in ["notifications", "deliveries", "attempts"] {
            for try await n in try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int8 FROM \(table)")).decode(Int.self) {
                counts[table] = n
            }
        }
        return counts
    }

    /// The largest tenant: its rows are 40% of each table.
    static let tenant = tenants[0]

    func query(_ shape: Shape, _ i: Int, store: AuditStore) async throws -> AuditQuery {
        let query = try AuditQuery.parse(shape.body(i), tenant: Self.tenant)
        guard shape.name.contains("2nd page") else { return query }
        // The second page: its cursor comes from the first.
        let first = try await store.run(query)
        guard let cursor = first.nextCursor, case .object(var members) = shape.body(i) else { return query }
        members["cursor"] = .string(cursor.token)
        return try AuditQuery.parse(.object(members), tenant: Self.tenant)
    }

    func measure(_ shape: Shape, store: AuditStore, iterations: Int) async throws -> Measurement {
        let clock = ContinuousClock()
        var samples: [Duration] = []
        for i in 0..<(iterations + max(1, iterations / 10)) {
            let query = try await query(shape, i, store: store)
            let start = clock.now
            let page = try await store.run(query, statementTimeout: .seconds(30))
            let elapsed = clock.now - start
            precondition(!page.items.isEmpty || shape.name.contains("metadata"), "\(shape.name) selected nothing")
            if i >= max(1, iterations / 10) { samples.append(elapsed) }  // the first tenth warms up
        }
        return Measurement(name: shape.name, samples: samples)
    }

    /// The plan's scan nodes for the shape's first query (EXPLAIN ANALYZE), e.g. `Index Scan Backward using attempts_audit_channel`.
    /// Plan nodes with the day partitions folded: `Index Scan Backward using attempts_p20261101_tenant_…_idx
    /// on attempts_p20261101 attempts_2`, one per day, becomes one `… on N partitions of attempts` entry.
    static func condensed(_ scans: [String]) -> [String] {
        let partition = /(\w+?)_(p\d{8}|default|before_\d{8})(_\w+)?/
        var folded: [(node: String, count: Int)] = []
        for scan in scans {
            var node = scan.replacing(#/ \w+_\d+$/#, with: "")  // the alias (attempts_2)
            var table: String?
            node = node.replacing(partition) { match in
                table = String(match.1)
                return match.3.map { String(match.1) + "_…" + $0 } ?? String(match.1)
            }
            if table == nil {
                folded.append((scan, 1))
            } else if let last = folded.last, last.node == node {
                folded[folded.count - 1].count += 1
            } else {
                folded.append((node, 1))
            }
        }
        return folded.map { $0.count > 1 ? "\($0.node) (\($0.count) partitions)" : $0.node }
    }

    func plan(_ shape: Shape, client: PostgresClient) async throws -> String {
        let store = AuditStore(client: client, logger: Logger(label: "bench"))
        let statement = try await query(shape, 0, store: store).statement()
        var bindings = PostgresBindings()
        for parameter in statement.parameters { bindings.append(parameter) }
        var scans: [String] = []
        for try await line in try await client.query(
            PostgresQuery(unsafeSQL: "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement.sql, binds: bindings)
        ).decode(String.self) {
            let trimmed = line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "->  ", with: "")
            let isNode = trimmed.contains(" Scan") || trimmed.hasPrefix("Sort") || trimmed.hasPrefix("Incremental Sort")
            if isNode, !trimmed.contains(":") {
                scans.append(String(trimmed.prefix { $0 != "(" }).trimmingCharacters(in: .whitespaces))
            }
        }
        return Self.condensed(scans).joined(separator: " → ")
    }

    func machineFacts(_ client: PostgresClient) async throws -> [(String, String)] {
        func setting(_ name: String) async throws -> String {
            var value = "?"
            for try await text in try await client.query(PostgresQuery(unsafeSQL: "SHOW \(name)")).decode(String.self) { value = text }
            return value
        }
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        return [
            ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"),
            ("memory", "\(ProcessInfo.processInfo.physicalMemory >> 30) GiB"),
            ("PostgreSQL", try await setting("server_version")),
            ("fsync", try await setting("fsync")),
            ("shared_buffers", try await setting("shared_buffers")),
            ("Swift build", build),
            ("measured", Timestamp.string(Date())),
        ]
    }

    static func markdown(
        results: [(Shape, Measurement, String)], without: [Measurement], facts: [(String, String)], loaded: [String: Int],
        iterations: Int
    ) -> String {
        let goal = Duration.milliseconds(100)
        var lines = [
            "# Audit query benchmark", "",
            "`swift run -c release herald-bench audit` (writes this file; the build it ran in is in the table below). "
                + "Each query goes through `AuditStore.run` (parse, compile, one read-only transaction with "
                + "`statement_timeout`, render the rows as JSON), limit 100, for the largest tenant (40% of the rows), "
                + "client and PostgreSQL on the same machine.", "",
            "| machine | |", "| --- | --- |",
        ]
        lines += facts.map { "| \($0.0) | \($0.1) |" }
        lines += [
            "", "Data (`INSERT … SELECT generate_series`, then `ANALYZE`): "
                + "\(loaded["attempts"] ?? 0) attempts, \(loaded["deliveries"] ?? 0) deliveries, \(loaded["notifications"] ?? 0) notifications; "
                + "\(tenants.count) tenants (40/25/15/10/10%), \(channels.count) channels (skewed), outcomes 92% success, "
                + "deliveries 90% sent / 4% failed / 2% retrying / 2% queued, metadata `customer` (20,000 values), `campaign`, `plan`; "
                + "30 days of history. Parameters (channel, day, status, customer) vary per run.", "",
            "| query shape | p50 | p99 | goal (selective: p99 < 100 ms) | p50 without migration 5 | plan |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for (index, (shape, measurement, plan)) in results.enumerated() {
            let p99 = measurement.percentile(0.99)
            let verdict = shape.selective ? (p99 < goal ? "met" : "**NOT MET**") : "—"
            lines.append(
                "| \(shape.name) | \(Measurement.format(measurement.median)) | \(Measurement.format(p99)) | \(verdict) | "
                    + "\(Measurement.format(without[index].median)) | \(plan) |")
        }
        lines += [
            "", "\(iterations) measured runs per shape (after \(max(1, iterations / 10)) warm-up runs); "
                + "\(max(5, iterations / 20)) without the indexes. The second-page shape measures only the second page.",
            "", Self.indexChoices, "",
        ]
        return lines.joined(separator: "\n")
    }
}

extension AuditBenchmark {
    static let indexChoices = """
        Index choices (migration 5), read from the plans above and the column without them: each shape's
        equality column leads after `tenant`, then the sort time and `id`, so the index returns the rows already in
        the query's order and the keyset cursor `(started_at, id) < (…)` is an index condition: no sort, ~100 rows
        read. `(tenant, started_at, id)` serves `$ne` and unindexed filters (the planner walks newest first and
        filters; at 8% non-success that is ~1,300 rows for a page). `(tenant, outcome, started_at, id)` is what
        makes rare outcomes cheap (an index-only walk instead of filtering ~10,000 rows); the deliveries by
        status use the existing partial `deliveries_dead_letters` for `failed` and `(tenant, status, updated_at, id)`
        for the others. Metadata equalities use the GIN `jsonb_path_ops` index on `request -> 'metadata'` via
        the containment test the compiler adds (a btree expression index would serve one known key only).
        Not measured here: what the three attempts indexes cost the delivery engine's inserts.
        """
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
