import Foundation
import Logging
import PostgresNIO

/// One outbox row: a delivery waiting to be published.
public struct OutboxEntry: Sendable, Hashable {
    public var id: Int64
    public var deliveryID: UUID
    public var channel: String
    public var payload: String
}

/// The transactional outbox: rows written with their notification, published by the relay,
/// removed once the broker confirmed them.
public struct OutboxStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Locks up to `limit` unpublished rows (skipping rows another relay holds), hands them to
    /// `publish`, and deletes them in the same transaction once `publish` returns. If `publish`
    /// throws, the transaction rolls back and the rows stay for the next round: at-least-once.
    /// Returns how many rows were published.
    public func relayBatch(
        limit: Int, publish: ([OutboxEntry]) async throws -> Void
    ) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            var entries: [OutboxEntry] = []
            for try await (id, deliveryID, channel, payload) in try await connection.query(
                "SELECT id, delivery_id, channel, payload FROM outbox ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED",
                logger: logger
            ).decode((Int64, UUID, String, String).self) {
                entries.append(OutboxEntry(id: id, deliveryID: deliveryID, channel: channel, payload: payload))
            }
            guard !entries.isEmpty else { return 0 }
            try await publish(entries)
            let ids = entries.map(\.id)
            try await connection.query("DELETE FROM outbox WHERE id = ANY(\(ids)::bigint[])", logger: logger)
            return entries.count
        }
    }

    public func pendingCount() async throws -> Int {
        var count = 0
        for try await value in try await client.query("SELECT count(*)::bigint FROM outbox", logger: logger).decode(Int.self) {
            count = value
        }
        return count
    }
}
