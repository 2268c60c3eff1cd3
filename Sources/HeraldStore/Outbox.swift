import Foundation
import HeraldCore
import Logging
import PostgresNIO

/// One outbox row: a delivery's stored job, to publish for attempt `attempt`.
public struct OutboxEntry: Sendable, Hashable {
    public var id: Int64
    public var deliveryID: UUID
    public var channel: String
    public var attempt: Int
    public var purpose: OutboxPurpose
    public var payload: String
    /// How long the row had been due when it was taken (seconds).
    public var dueFor: Double = 0

    public init(
        id: Int64, deliveryID: UUID, channel: String, attempt: Int, purpose: OutboxPurpose, payload: String, dueFor: Double = 0
    ) {
        self.id = id
        self.deliveryID = deliveryID
        self.channel = channel
        self.attempt = attempt
        self.purpose = purpose
        self.payload = payload
        self.dueFor = dueFor
    }
}

/// The transactional outbox: rows written with their notification (or by a worker's settlement for a
/// retry, a fallback or a replay), published by the relay once due, removed once the broker confirmed them.
public struct OutboxStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Locks up to `limit` due rows (`not_before` passed; rows another relay holds are skipped),
    /// hands them to `publish`, and deletes them in the same transaction once `publish` returns; a
    /// `scheduled` delivery moves to `queued` as it is published. If `publish` throws, the
    /// transaction rolls back and the rows stay for the next round: at-least-once.
    /// Returns how many rows were published.
    public func relayBatch(
        limit: Int, publish: ([OutboxEntry]) async throws -> Void
    ) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            var entries: [OutboxEntry] = []
            var orphans: [Int64] = []
            for try await (id, deliveryID, channel, attempt, purpose, payload, dueFor) in try await connection.execute(
                DueOutboxStatement(limit: limit), logger: logger
            ) {
                guard let payload else {
                    orphans.append(id)
                    continue
                }
                entries.append(OutboxEntry(
                    id: id, deliveryID: deliveryID, channel: channel, attempt: attempt,
                    purpose: OutboxPurpose(rawValue: purpose) ?? .deliver, payload: payload, dueFor: max(0, dueFor)))
            }
            if !orphans.isEmpty {
                // A row whose delivery has no stored job can never be published: say so and drop it.
                logger.error("outbox rows without a stored job dropped", metadata: [
                    "outbox.ids": .array(orphans.map { .stringConvertible($0) }),
                ])
            }
            guard !entries.isEmpty || !orphans.isEmpty else { return 0 }
            if !entries.isEmpty { try await publish(entries) }
            let ids = entries.map(\.id) + orphans
            try await connection.query("DELETE FROM outbox WHERE id = ANY(\(ids)::bigint[])", logger: logger)
            let scheduled = entries.filter { $0.purpose == .scheduled }.map(\.deliveryID)
            if !scheduled.isEmpty {
                try await connection.query(
                    """
                    UPDATE deliveries SET status = \(DeliveryStatus.queued.rawValue), updated_at = now()
                    WHERE id = ANY(\(scheduled)::uuid[]) AND status = \(DeliveryStatus.scheduled.rawValue)
                    """, logger: logger)
            }
            return entries.count
        }
    }

    /// Removes rows their writer published itself (`AcceptResult.publishNow`), once the broker
    /// confirmed them. Committed without waiting for the disk: a removal lost in a database crash
    /// only lets the relay publish the row a second time, which the workers' claim turns into a no-op.
    public func remove(published ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await client.withConnection { connection in
            try await connection.run(RemovePublishedStatement(ids: ids), logger: logger)
        }
    }

    public func pendingCount() async throws -> Int {
        var count = 0
        for try await value in try await client.query("SELECT count(*)::bigint FROM outbox", logger: logger).decode(Int.self) {
            count = value
        }
        return count
    }

    /// Rows due and not yet published, and how long the oldest of them has been due (seconds).
    public func backlog() async throws -> (rows: Int, oldestDueSeconds: Double) {
        var result = (rows: 0, oldestDueSeconds: 0.0)
        for try await (rows, oldest) in try await client.query(
            """
            SELECT count(*)::int8, COALESCE(extract(epoch FROM now() - min(not_before)), 0)::float8
            FROM outbox WHERE not_before <= now()
            """,
            logger: logger
        ).decode((Int64, Double).self) {
            result = (Int(rows), max(0, oldest))
        }
        return result
    }

    /// How long the oldest due row has waited (zero when none is due): the relay's progress.
    public func oldestDueAge() async throws -> Duration {
        var seconds: Double = 0
        for try await value in try await client.query(
            "SELECT COALESCE(extract(epoch FROM now() - min(not_before)), 0)::float8 FROM outbox WHERE not_before <= now()",
            logger: logger
        ).decode(Double.self) {
            seconds = value
        }
        return .milliseconds(Int64((max(0, seconds) * 1000).rounded()))
    }
}
