import Foundation
import HeraldCore
import HeraldStore
import Logging
import PostgresNIO
import Testing

/// The pipeline's prepared statements under generic plans (the worker's pool, `StatementPlans.generic`),
/// on real PostgreSQL: a batch reads the deliveries it names, however far apart their ids are.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct PreparedStatementTests {
    /// Rows read from the deliveries partitions (index and sequential scans) so far, as this session
    /// sees them: its own counts are flushed first.
    static func deliveryRowsRead(_ client: PostgresClient) async throws -> Int {
        try await client.query("SELECT pg_stat_force_next_flush()")
        return try await RetentionTests.count(
            client,
            """
            SELECT (COALESCE(sum(idx_tup_fetch), 0) + COALESCE(sum(seq_tup_read), 0))::int
            FROM pg_stat_user_tables WHERE relname LIKE 'deliveries\\_%'
            """)
    }

    @Test func aBatchSpanningManyDeliveriesReadsOnlyItsOwn() async throws {
        // One connection: the statements and the statistics are the same session's.
        try await RetentionTests.withFreshDatabase(connections: 1, plans: .generic) { client in
            let store = NotificationStore(client: client, logger: TestServers.logger)
            // 2,000 deliveries accepted over a minute; the batch names the first and the last.
            let start = Date().addingTimeInterval(-120)
            var accepted: [NewNotification] = []
            for index in 0..<2_000 {
                accepted.append(RetentionTests.notification(at: start.addingTimeInterval(Double(index) * 0.03)))
            }
            _ = try await store.accept(accepted)
            let first = accepted[0], last = accepted[accepted.count - 1]
            let named = [first, last].map { ($0.id, $0.deliveries[0].id) }

            let beforeClaim = try await Self.deliveryRowsRead(client)
            let claims = try await store.claim(named.map { ClaimRequest(deliveryID: $0.1, attempt: 1, lease: .seconds(30)) }, worker: "w")
            let claimRead = try await Self.deliveryRowsRead(client) - beforeClaim
            #expect(claims.map { $0?.claimed } == [true, true])

            let now = Date()
            let settlements = named.map { notification, delivery in
                Settlement(
                    deliveryID: delivery,
                    attempts: [AttemptRecord(
                        deliveryID: delivery, notificationID: notification, number: 1, startedAt: now, finishedAt: now,
                        outcome: .success, httpStatus: 200, error: nil, resultingStatus: .sent, worker: "w", channel: "webhook",
                        tenant: "t1")],
                    status: .sent)
            }
            let beforeSettle = try await Self.deliveryRowsRead(client)
            try await store.settle(settlements)
            let settleRead = try await Self.deliveryRowsRead(client) - beforeSettle
            #expect(try await RetentionTests.count(client, "SELECT count(*)::int FROM deliveries WHERE status = 'sent'") == 2)

            // A claim looks each delivery up twice (to move it, and to answer); a settlement once. The
            // range between the two ids holds 2,000 rows: scanning it would read thousands.
            #expect(claimRead <= 8, "the claim read \(claimRead) delivery rows for 2 deliveries")
            #expect(settleRead <= 8, "the settlement read \(settleRead) delivery rows for 2 deliveries")
        }
    }

    /// A settlement that schedules retries writes outbox rows for its deliveries (`enqueue`, an
    /// unprepared statement, planned generically on this pool too): the same bound applies.
    @Test func aRetrySpanningManyDeliveriesReadsOnlyItsOwn() async throws {
        try await RetentionTests.withFreshDatabase(connections: 1, plans: .generic) { client in
            let store = NotificationStore(client: client, logger: TestServers.logger)
            let start = Date().addingTimeInterval(-120)
            var accepted: [NewNotification] = []
            for index in 0..<2_000 {
                accepted.append(RetentionTests.notification(at: start.addingTimeInterval(Double(index) * 0.03)))
            }
            _ = try await store.accept(accepted)
            let named = [accepted[0], accepted[accepted.count - 1]].map { ($0.id, $0.deliveries[0].id) }
            let now = Date()
            let retries = named.map { notification, delivery in
                Settlement(
                    deliveryID: delivery,
                    attempts: [AttemptRecord(
                        deliveryID: delivery, notificationID: notification, number: 1, startedAt: now, finishedAt: now,
                        outcome: .transientFailure, httpStatus: 503, error: "busy", resultingStatus: .retrying, worker: "w",
                        channel: "webhook", tenant: "t1")],
                    status: .retrying, lastError: "busy",
                    enqueue: [OutboxEnqueue(deliveryID: delivery, attempt: 2, notBefore: now.addingTimeInterval(60), purpose: .deliver)])
            }
            let before = try await Self.deliveryRowsRead(client)
            try await store.settle(retries)
            let read = try await Self.deliveryRowsRead(client) - before
            #expect(try await RetentionTests.count(client, "SELECT count(*)::int FROM outbox WHERE attempt = 2") == 2)
            // The attempts' update looks each delivery up once, the outbox rows' channel once more.
            #expect(read <= 12, "the retry settlement read \(read) delivery rows for 2 deliveries")
        }
    }
}
