import Foundation
import HeraldCore
import HeraldStore
import Logging
import PostgresNIO
import Testing

/// Day partitions and retention on real PostgreSQL, each test on a database of its own (retention
/// drops whole days: it must not touch what other tests run on).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RetentionTests {
    /// Runs `body` on a new, empty database, migrated `through` a version (all by default), and drops
    /// it afterwards. `body`'s pool is configured as Herald's are (`.herald`), with `connections` and `plans`.
    static func withFreshDatabase<T: Sendable>(
        through version: Int? = nil, connections: Int = 4, plans: StatementPlans = .perExecution,
        _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let logger = TestServers.logger
        var components = try #require(URLComponents(string: TestServers.postgresURL))
        let name = "herald_test_retention_\(UUID().uuidString.prefix(8).lowercased())"
        components.path = "/postgres"
        let admin = PostgresClient(configuration: try .init(url: try #require(components.string)), backgroundLogger: logger)
        components.path = "/\(name)"
        let client = PostgresClient(
            configuration: try .herald(url: try #require(components.string), connections: connections, plans: plans),
            backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await admin.run()
                return nil
            }
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            group.addTask {
                await client.run()
                return nil
            }
            do {
                try await Migrations.migrate(client: client, logger: logger, through: version)
                let result = try await body(client)
                _ = try? await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"))
                group.cancelAll()
                return result
            } catch {
                _ = try? await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)"))
                group.cancelAll()
                throw error
            }
        }
    }

    static func count(_ client: PostgresClient, _ sql: String) async throws -> Int {
        var value = 0
        for try await n in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(Int.self) { value = n }
        return value
    }

    static func exists(_ client: PostgresClient, _ table: String) async throws -> Bool {
        try await count(client, "SELECT count(*)::int FROM pg_class WHERE relname = '\(table)'") == 1
    }

    /// A notification accepted at `instant`, with one delivery (ids as the planner makes them).
    static func notification(at instant: Date, key: String? = nil, tenant: String = "t1") -> NewNotification {
        let id = UUID.timeOrdered(now: instant)
        let delivery = NewDelivery(id: .timeOrdered(now: instant), channel: "webhook", status: .queued, job: "{}", publishAt: instant)
        return NewNotification(
            id: id, createdAt: instant, tenant: tenant, idempotencyKey: key, configVersion: "v", document: ["text": "hello"],
            deliveries: [delivery])
    }

    static func addAttempt(_ client: PostgresClient, delivery: UUID, notification: UUID, at instant: Date) async throws {
        try await client.query(
            """
            INSERT INTO attempts (delivery_id, notification_id, tenant, channel, number, started_at, finished_at, outcome, worker)
            VALUES (\(delivery), \(notification), 't1', 'webhook', 1, \(instant), \(instant), 'success', 'w')
            """)
    }

    @Test func expiredDaysAreDroppedWholeAndOpenOnesKept() async throws {
        try await Self.withFreshDatabase { client in
            let logger = TestServers.logger
            let store = NotificationStore(client: client, logger: logger)
            let partitions = PartitionStore(client: client, logger: logger)
            let now = Date()
            let today = UTCDay.start(of: now)
            func daysAgo(_ days: Double) -> Date { today.addingTimeInterval(-days * 86_400 + 3_600) }
            // Days 10 and 9 ago (old enough to go), 2 ago (kept).
            try await client.query("SELECT herald_ensure_partitions(\(UTCDay.iso(daysAgo(10)))::date, \(UTCDay.iso(daysAgo(9)))::date)")
            try await client.query("SELECT herald_ensure_partitions(\(UTCDay.iso(daysAgo(2)))::date, \(UTCDay.iso(daysAgo(2)))::date)")
            let old = Self.notification(at: daysAgo(10), key: "order-1")
            let oldButOpen = Self.notification(at: daysAgo(9))
            let recent = Self.notification(at: daysAgo(2))
            let current = Self.notification(at: now, key: "order-2")
            let outcomes = try await store.accept([old, oldButOpen, recent, current])
            #expect(outcomes == [.stored, .stored, .stored, .stored])
            for notification in [old, recent, current] {
                try await Self.addAttempt(client, delivery: notification.deliveries[0].id, notification: notification.id, at: notification.createdAt)
            }
            try await client.query(
                "UPDATE deliveries SET status = 'sent' WHERE id = ANY(\([old, recent, current].map(\.deliveries[0].id))::uuid[])")
            // Each notification is in its day's partition, with its delivery and attempt.
            let oldDay = "p" + UTCDay.compact(old.createdAt)
            #expect(try await Self.count(client, "SELECT count(*)::int FROM notifications_\(oldDay)") == 1)
            #expect(try await Self.count(client, "SELECT count(*)::int FROM deliveries_\(oldDay)") == 1)
            #expect(try await Self.count(client, "SELECT count(*)::int FROM attempts_\(oldDay)") == 1)
            #expect(try await Self.count(client, "SELECT count(*)::int FROM notifications_default") == 0)

            let report = try await partitions.run(now: now, keepDays: 7)
            #expect(report.dropped.map(\.partition.suffix) == [oldDay])
            #expect(report.held.map(\.partition.suffix) == ["p" + UTCDay.compact(oldButOpen.createdAt)])
            #expect(report.held.first?.reason.contains("not yet in a terminal status") == true)
            for table in ["notifications", "deliveries", "attempts", "delivery_events"] {
                #expect(try await !Self.exists(client, "\(table)_\(oldDay)"), "\(table)_\(oldDay)")
            }
            #expect(try await store.notification(id: old.id) == nil)
            #expect(try await store.notification(id: oldButOpen.id)?.deliveries.first?.status == .queued)
            #expect(try await store.notification(id: recent.id)?.deliveries.first?.attempts.count == 1)
            #expect(try await store.notification(id: current.id)?.deliveries.first?.attempts.count == 1)
            // The dropped day's idempotency key went with it; today's still answers.
            let again = try await store.accept([Self.notification(at: now, key: "order-1"), Self.notification(at: now, key: "order-2")])
            #expect(again.first == .stored)
            guard case .duplicate(let original) = again.last else {
                Issue.record("order-2 was stored again: \(again)")
                return
            }
            #expect(original.id == current.id)
            // Foreign keys join each day's partitions: an attempt of no delivery of its day is refused.
            await #expect(throws: (any Error).self) {
                try await Self.addAttempt(client, delivery: UUID.timeOrdered(now: recent.createdAt), notification: recent.id, at: recent.createdAt)
            }
            // Partitions a week ahead; the attempt log still refuses row edits.
            #expect(try await Self.exists(client, "attempts_p" + UTCDay.compact(today.addingTimeInterval(7 * 86_400))))
            await #expect(throws: (any Error).self) { try await client.query("DELETE FROM attempts") }

            // Once the open delivery ends, its day goes too; nothing else is expired.
            try await client.query("UPDATE deliveries SET status = 'cancelled' WHERE id = \(oldButOpen.deliveries[0].id)")
            let second = try await partitions.run(now: now, keepDays: 7)
            #expect(second.dropped.map(\.partition.suffix) == ["p" + UTCDay.compact(oldButOpen.createdAt)])
            #expect(second.held.isEmpty && second.partitionsCreated == 0)
            // recent, current and the second order-1
            #expect(try await Self.count(client, "SELECT count(*)::int FROM notifications") == 3)
        }
    }

    /// Rows from before partitioning are copied into one partition, `…_before_DAY` (DAY: the one after
    /// the newest copied row's), with their ids, idempotency keys and attempt numbering; retention
    /// drops it like a day.
    @Test func theUpgradeKeepsEveryRowAndRetentionDropsThemLater() async throws {
        try await Self.withFreshDatabase(through: 8) { client in
            let logger = TestServers.logger
            let earlier = Date().addingTimeInterval(-3 * 86_400)
            let notificationID = UUID.timeOrdered(now: earlier), deliveryID = UUID.timeOrdered(now: earlier.addingTimeInterval(0.002))
            try await client.query(
                """
                INSERT INTO notifications (id, created_at, tenant, idempotency_key, request_hash, config_version, request)
                VALUES (\(notificationID), \(earlier), 't1', 'k-1', 'h', 'v8', '{"text": "before"}')
                """)
            try await client.query(
                """
                INSERT INTO deliveries (id, notification_id, tenant, channel, status, job, attempt_count)
                VALUES (\(deliveryID), \(notificationID), 't1', 'webhook', 'sent', '{}', 1)
                """)
            try await Self.addAttempt(client, delivery: deliveryID, notification: notificationID, at: earlier)
            try await client.query(
                """
                INSERT INTO delivery_events (delivery_id, notification_id, tenant, channel, provider, kind, provider_status,
                    previous_status, resulting_status)
                VALUES (\(deliveryID), \(notificationID), 't1', 'webhook', 'p', 'receipt', 'DELIVRD', 'sent', 'delivered')
                """)
            let lastAttempt = try await Self.count(client, "SELECT max(id)::int FROM attempts")

            #expect(try await Migrations.migrate(client: client, logger: logger) == [9])
            let before = "before_" + UTCDay.compact(earlier.addingTimeInterval(86_400))
            #expect(try await Self.exists(client, "attempts_\(before)"))
            #expect(try await !Self.exists(client, "attempts_unpartitioned"))
            let store = NotificationStore(client: client, logger: logger)
            let stored = try #require(try await store.notification(id: notificationID))
            #expect(stored.document["text"] == "before")
            #expect(stored.deliveries.map(\.status) == [.sent])
            #expect(stored.deliveries.first?.attempts.count == 1 && stored.deliveries.first?.events.count == 1)
            guard case .duplicate(let original) = try await store.accept([Self.notification(at: Date(), key: "k-1")]).first else {
                Issue.record("the copied idempotency key was not found")
                return
            }
            #expect(original.id == notificationID && original.requestHash == "h")
            let fresh = Self.notification(at: Date())
            _ = try await store.accept([fresh])
            try await Self.addAttempt(client, delivery: fresh.deliveries[0].id, notification: fresh.id, at: Date())
            #expect(try await Self.count(client, "SELECT max(id)::int FROM attempts") == lastAttempt + 1)

            // A later pass (here: as if a day had gone by) drops the copied rows, and nothing of today's.
            let report = try await PartitionStore(client: client, logger: logger).run(now: Date().addingTimeInterval(86_400), keepDays: 1)
            // The copied rows' partition first, then the empty days between it and today.
            #expect(report.dropped.first?.partition.suffix == before)
            #expect(report.dropped.allSatisfy { $0.partition.end <= UTCDay.start(of: Date()) } && report.held.isEmpty)
            #expect(try await store.notification(id: notificationID) == nil)
            #expect(try await store.notification(id: fresh.id) != nil)
        }
    }
}
