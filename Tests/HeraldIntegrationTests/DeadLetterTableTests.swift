import Foundation
import HeraldCore
import HeraldStore
import PostgresNIO
import Testing

/// Migration 10 on real PostgreSQL: the dead letters live in their own table, kept by a trigger on
/// the delivery status, so that no index of `deliveries` covers what claims and settles change and
/// those updates stay within their page (HOT).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct DeadLetterTableTests {
    /// Columns a claim or a settle writes (`ClaimStatement`, `RecordAttemptsStatement`).
    static let writtenPerAttempt = ["status", "updated_at", "attempt_count", "attempt_base", "last_error", "claimed_by", "lease_until"]

    /// Every index of the partitioned `deliveries` with the columns it reads (keys, expressions and predicate).
    static func deliveriesIndexes(_ client: PostgresClient) async throws -> [String: String] {
        var indexes: [String: String] = [:]
        for try await (name, definition) in try await client.query(
            """
            SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = 'deliveries'::regclass
            """
        ).decode((String, String).self) { indexes[name] = definition }
        return indexes
    }

    static func readColumns(_ definition: String) -> [String] {
        writtenPerAttempt.filter { column in
            definition.range(of: "\\b\(column)\\b", options: .regularExpression) != nil
        }
    }

    @Test func noIndexOfDeliveriesReadsWhatAttemptsWrite() async throws {
        try await RetentionTests.withFreshDatabase { client in
            let indexes = try await Self.deliveriesIndexes(client)
            #expect(indexes["deliveries_pkey"] != nil && indexes.count >= 4, "\(indexes)")
            for (name, definition) in indexes {
                #expect(Self.readColumns(definition).isEmpty, "\(name): \(definition)")
            }
        }
    }

    /// Room for updates within the page, in the deliveries partitions there are and in those to come.
    @Test func deliveriesPartitionsLeaveRoomForUpdates() async throws {
        try await RetentionTests.withFreshDatabase { client in
            let later = UTCDay.start(of: Date()).addingTimeInterval(20 * 86_400)
            try await client.query("SELECT herald_ensure_partitions(\(UTCDay.iso(later))::date, \(UTCDay.iso(later))::date)")
            var options: [String: String] = [:]
            for try await (name, option) in try await client.query(
                """
                SELECT c.relname, coalesce(array_to_string(c.reloptions, ','), '') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'deliveries'::regclass
                """
            ).decode((String, String).self) { options[name] = option }
            #expect(options["deliveries_p" + UTCDay.compact(later)] == "fillfactor=75")
            #expect(options["deliveries_default"] == "fillfactor=75")
            #expect(options.count > 3 && options.values.allSatisfy { $0 == "fillfactor=75" }, "\(options)")
            // The other tables' days keep the default.
            #expect(try await RetentionTests.count(
                client, "SELECT count(*)::int FROM pg_class WHERE relname = 'attempts_p\(UTCDay.compact(later))' AND reloptions IS NULL") == 1)
        }
    }

    /// `noIndexOfDeliveriesReadsWhatAttemptsWrite` can fail: before migration 10 two indexes read the status.
    @Test func beforeMigration10TwoIndexesReadTheStatus() async throws {
        try await RetentionTests.withFreshDatabase(through: 9) { client in
            let reading = try await Self.deliveriesIndexes(client).filter { !Self.readColumns($0.value).isEmpty }
            #expect(Set(reading.keys) == ["deliveries_dead_letters", "deliveries_audit_status"])
        }
    }

    @Test func theTriggerKeepsTheDeadLettersWhateverMovesTheStatus() async throws {
        try await RetentionTests.withFreshDatabase { client in
            let logger = TestServers.logger
            let store = NotificationStore(client: client, logger: logger)
            let first = RetentionTests.notification(at: Date(), tenant: "t1")
            var second = RetentionTests.notification(at: Date().addingTimeInterval(0.01), tenant: "t2")
            second.deliveries[0].status = .failed  // stored failed at once (as a plan that can't be sent is)
            _ = try await store.accept([first, second])
            let firstID = first.deliveries[0].id, secondID = second.deliveries[0].id
            func letters(_ selection: DeadLetterSelection = .init()) async throws -> [UUID] {
                try await store.deadLetters(selection, after: nil).map(\.id)
            }
            #expect(try await letters() == [secondID])

            // A settle that fails the delivery lists it, with its failure time; the tenant and channel filter.
            try await client.query("UPDATE deliveries SET status = 'sending' WHERE id = \(firstID)")
            try await store.settle([Settlement(deliveryID: firstID, status: .failed, lastError: "HTTP 410")])
            #expect(Set(try await letters()) == [firstID, secondID])
            #expect(try await letters(.init(tenant: "t1")) == [firstID])
            #expect(try await letters(.init(channel: "sms")).isEmpty)
            let listed = try #require(try await store.deadLetters(.init(deliveryIDs: [firstID]), after: nil).first)
            #expect(listed.lastError == "HTTP 410" && abs(listed.failedAt.timeIntervalSinceNow) < 60)

            // A replay takes it out (and queues it); failing again brings it back.
            #expect(try await store.replay(.init(deliveryIDs: [firstID])) == [firstID])
            #expect(try await letters() == [secondID])
            #expect(try await store.deliveryStatus(id: firstID) == .queued)
            try await store.settle([Settlement(deliveryID: firstID, status: .failed, lastError: "HTTP 410")])
            #expect(Set(try await letters()) == [firstID, secondID])

            // Any other change of status out of failed (an operator's UPDATE) takes it out too.
            try await client.query("UPDATE deliveries SET status = 'cancelled' WHERE id = \(secondID)")
            #expect(try await letters() == [firstID])
            #expect(try await RetentionTests.count(client, "SELECT count(*)::int FROM dead_letters") == 1)
        }
    }

    @Test func theUpgradeCopiesTheFailedDeliveries() async throws {
        try await RetentionTests.withFreshDatabase(through: 9) { client in
            let logger = TestServers.logger
            let store = NotificationStore(client: client, logger: logger)
            let failed = RetentionTests.notification(at: Date()), sent = RetentionTests.notification(at: Date().addingTimeInterval(0.01))
            _ = try await store.accept([failed, sent])
            try await client.query("UPDATE deliveries SET status = 'failed', updated_at = now() - interval '1 hour' WHERE id = \(failed.deliveries[0].id)")
            try await client.query("UPDATE deliveries SET status = 'sent' WHERE id = \(sent.deliveries[0].id)")

            #expect(try await Migrations.migrate(client: client, logger: logger) == [10])
            let letters = try await store.deadLetters(.init(), after: nil)
            #expect(letters.map(\.id) == [failed.deliveries[0].id])
            #expect(abs((letters.first?.failedAt.timeIntervalSinceNow ?? 0) + 3_600) < 60)
        }
    }

    @Test func retentionDropsADaysDeadLettersWithIt() async throws {
        try await RetentionTests.withFreshDatabase { client in
            let logger = TestServers.logger
            let store = NotificationStore(client: client, logger: logger)
            let today = UTCDay.start(of: Date())
            let old = today.addingTimeInterval(-10 * 86_400 + 3_600)
            try await client.query("SELECT herald_ensure_partitions(\(UTCDay.iso(old))::date, \(UTCDay.iso(old))::date)")
            var expired = RetentionTests.notification(at: old), kept = RetentionTests.notification(at: Date())
            expired.deliveries[0].status = .failed
            kept.deliveries[0].status = .failed
            _ = try await store.accept([expired, kept])
            #expect(try await RetentionTests.count(client, "SELECT count(*)::int FROM dead_letters") == 2)

            let report = try await PartitionStore(client: client, logger: logger).run(now: Date(), keepDays: 7)
            #expect(report.dropped.map(\.partition.suffix) == ["p" + UTCDay.compact(old)])
            #expect(try await store.deadLetters(.init(), after: nil).map(\.id) == [kept.deliveries[0].id])
            #expect(try await RetentionTests.count(client, "SELECT count(*)::int FROM dead_letters") == 1)
        }
    }
}
