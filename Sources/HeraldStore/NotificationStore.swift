import Foundation
import HeraldCore
import Logging
import PostgresNIO

/// A notification ready to be stored: the document, its deliveries, and the outbox payload of each.
public struct NewNotification: Sendable {
    public var id: UUID
    public var createdAt: Date
    public var idempotencyKey: String?
    public var configVersion: String
    public var document: JSONValue
    public var deliveries: [NewDelivery]

    public init(
        id: UUID, createdAt: Date, idempotencyKey: String?, configVersion: String, document: JSONValue,
        deliveries: [NewDelivery]
    ) {
        self.id = id
        self.createdAt = createdAt
        self.idempotencyKey = idempotencyKey
        self.configVersion = configVersion
        self.document = document
        self.deliveries = deliveries
    }
}

public struct NewDelivery: Sendable {
    public var id: UUID
    public var channel: String
    /// The message published for it, as UTF-8 JSON; nil for a fallback delivery that waits on an earlier one.
    public var outboxPayload: String?

    public init(id: UUID, channel: String, outboxPayload: String?) {
        self.id = id
        self.channel = channel
        self.outboxPayload = outboxPayload
    }
}

public enum AcceptOutcome: Sendable, Hashable {
    case stored
    /// The idempotency key was seen before; this is the notification it named.
    case duplicate(of: UUID)
}

/// A stored notification with its deliveries and their attempts, as the API shows it.
public struct StoredNotification: Sendable {
    public var id: UUID
    public var createdAt: Date
    public var configVersion: String
    public var document: JSONValue
    public var deliveries: [StoredDelivery]
}

public struct StoredDelivery: Sendable {
    public var id: UUID
    public var channel: String
    public var status: DeliveryStatus
    public var attemptCount: Int
    public var lastError: String?
    public var providerMessageID: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var attempts: [StoredAttempt]
}

public struct StoredAttempt: Sendable {
    public var number: Int
    public var startedAt: Date
    public var finishedAt: Date
    public var outcome: String
    public var httpStatus: Int?
    public var error: String?
    public var providerMessageID: String?
    public var worker: String
    public var provider: String
    public var durationMilliseconds: Double
}

/// Notifications, deliveries, attempts and the outbox on PostgreSQL. Every write takes a batch
/// and costs one statement, so callers put a `GroupCommitter` in front of it.
public struct NotificationStore: Sendable {
    public let client: PostgresClient
    let logger: Logger
    static let jsonEncoder = JSONEncoder()

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Stores notifications, their deliveries and outbox rows in one statement (one transaction).
    /// A notification whose idempotency key exists already is not stored again.
    public func accept(_ batch: [NewNotification]) async throws -> [AcceptOutcome] {
        var ids: [UUID] = [], createdAts: [Date] = [], keys: [String] = [], versions: [String] = [], documents: [String] = []
        var deliveryIDs: [UUID] = [], deliveryNotificationIDs: [UUID] = [], channels: [String] = [], payloads: [String] = []
        for notification in batch {
            ids.append(notification.id)
            createdAts.append(notification.createdAt)
            keys.append(notification.idempotencyKey ?? "")
            versions.append(notification.configVersion)
            documents.append(String(decoding: try Self.jsonEncoder.encode(notification.document), as: UTF8.self))
            for delivery in notification.deliveries {
                deliveryIDs.append(delivery.id)
                deliveryNotificationIDs.append(notification.id)
                channels.append(delivery.channel)
                payloads.append(delivery.outboxPayload ?? "")
            }
        }
        let rows = try await client.query(
            """
            WITH n AS (
                INSERT INTO notifications (id, created_at, idempotency_key, config_version, request)
                SELECT id, created_at, NULLIF(key, ''), version, document::jsonb
                FROM unnest(\(ids)::uuid[], \(createdAts)::timestamptz[], \(keys)::text[], \(versions)::text[], \(documents)::text[])
                    AS t(id, created_at, key, version, document)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id
            ), d AS (
                INSERT INTO deliveries (id, notification_id, channel, status, created_at, updated_at)
                SELECT t.id, t.notification_id, t.channel, 'queued', now(), now()
                FROM unnest(\(deliveryIDs)::uuid[], \(deliveryNotificationIDs)::uuid[], \(channels)::text[])
                    AS t(id, notification_id, channel)
                WHERE t.notification_id IN (SELECT id FROM n)
                RETURNING id
            ), o AS (
                INSERT INTO outbox (delivery_id, channel, payload)
                SELECT t.delivery_id, t.channel, t.payload
                FROM unnest(\(deliveryIDs)::uuid[], \(channels)::text[], \(payloads)::text[]) AS t(delivery_id, channel, payload)
                WHERE t.payload <> '' AND t.delivery_id IN (SELECT id FROM d)
            )
            SELECT id FROM n
            """, logger: logger)
        var stored = Set<UUID>()
        for try await id in rows.decode(UUID.self) { stored.insert(id) }

        let duplicateKeys = batch.compactMap { stored.contains($0.id) ? nil : $0.idempotencyKey }
        var existing: [String: UUID] = [:]
        if !duplicateKeys.isEmpty {
            for try await (key, id) in try await client.query(
                "SELECT idempotency_key, id FROM notifications WHERE idempotency_key = ANY(\(duplicateKeys)::text[])",
                logger: logger
            ).decode((String, UUID).self) {
                existing[key] = id
            }
        }
        return try batch.map { notification in
            if stored.contains(notification.id) { return .stored }
            guard let key = notification.idempotencyKey, let original = existing[key] else {
                throw StoreError(message: "notification \(notification.id) was neither stored nor a duplicate")
            }
            return .duplicate(of: original)
        }
    }

    /// Appends attempts to the log and moves each delivery to the status its newest attempt left it in.
    /// A terminal status is never overwritten (a late duplicate of an old attempt can't undo `sent`).
    public func record(_ attempts: [AttemptRecord]) async throws {
        try await recordOutcomes([OutcomeRecord(attempts: attempts)])
    }

    /// Records outcomes in one transaction: attempts appended, delivery statuses moved, and fallback
    /// deliveries that are no longer needed cancelled.
    public func recordOutcomes(_ outcomes: [OutcomeRecord]) async throws {
        let attempts = outcomes.flatMap(\.attempts)
        let cancelled = outcomes.flatMap(\.cancelledDeliveries)
        guard !attempts.isEmpty || !cancelled.isEmpty else { return }
        try await client.withTransaction(logger: logger) { connection in
            if !attempts.isEmpty { try await Self.insertAttempts(attempts, on: connection, logger: logger) }
            if !cancelled.isEmpty {
                try await connection.query(
                    """
                    UPDATE deliveries SET status = 'cancelled', last_error = 'not needed: an earlier channel succeeded',
                        updated_at = now()
                    WHERE id = ANY(\(cancelled)::uuid[]) AND status IN ('queued', 'retrying')
                    """, logger: logger)
            }
        }
    }

    private static func insertAttempts(_ attempts: [AttemptRecord], on connection: PostgresConnection, logger: Logger) async throws {
        let deliveryIDs = attempts.map(\.deliveryID)
        let notificationIDs = attempts.map(\.notificationID)
        let numbers = attempts.map(\.number)
        let starts = attempts.map(\.startedAt)
        let finishes = attempts.map(\.finishedAt)
        let outcomes = attempts.map(\.outcome.rawValue)
        let statuses = attempts.map { $0.httpStatus ?? 0 }
        let errors = attempts.map { $0.error ?? "" }
        let providerIDs = attempts.map { $0.providerMessageID ?? "" }
        let workers = attempts.map(\.worker)
        let providers = attempts.map(\.provider)
        let resulting = attempts.map(\.resultingStatus.rawValue)
        // Only rows that say where the delivery stands move it ('sending' marks a failover step).
        try await connection.query(
            """
            WITH t AS (
                SELECT * FROM unnest(\(deliveryIDs)::uuid[], \(notificationIDs)::uuid[], \(numbers)::int[],
                    \(starts)::timestamptz[], \(finishes)::timestamptz[], \(outcomes)::text[], \(statuses)::int[],
                    \(errors)::text[], \(providerIDs)::text[], \(workers)::text[], \(providers)::text[], \(resulting)::text[])
                    WITH ORDINALITY AS t(delivery_id, notification_id, number, started_at, finished_at, outcome, http_status,
                         error, provider_message_id, worker, provider, resulting_status, position)
            ), a AS (
                INSERT INTO attempts (delivery_id, notification_id, number, started_at, finished_at, outcome,
                    http_status, error, provider_message_id, worker, provider)
                SELECT delivery_id, notification_id, number, started_at, finished_at, outcome,
                    NULLIF(http_status, 0), NULLIF(error, ''), NULLIF(provider_message_id, ''), worker, provider
                FROM t ORDER BY position
            )
            UPDATE deliveries d SET
                status = CASE WHEN d.status IN ('sent', 'delivered', 'failed', 'cancelled', 'expired')
                    THEN d.status ELSE u.resulting_status END,
                attempt_count = GREATEST(d.attempt_count, u.number),
                last_error = CASE WHEN u.outcome = 'success' THEN d.last_error ELSE NULLIF(u.error, '') END,
                provider_message_id = COALESCE(NULLIF(u.provider_message_id, ''), d.provider_message_id),
                updated_at = GREATEST(d.updated_at, u.finished_at)
            FROM (SELECT DISTINCT ON (delivery_id) * FROM t WHERE resulting_status <> 'sending'
                  ORDER BY delivery_id, number DESC, position DESC) u
            WHERE d.id = u.delivery_id
            """, logger: logger)
    }

    /// The notification with its deliveries and attempts, or nil.
    public func notification(id: UUID) async throws -> StoredNotification? {
        var header: (Date, String, String)?
        for try await row in try await client.query(
            "SELECT created_at, config_version, request::text FROM notifications WHERE id = \(id)", logger: logger
        ).decode((Date, String, String).self) {
            header = row
        }
        guard let (createdAt, configVersion, requestText) = header else { return nil }
        let document = try JSONDecoder().decode(JSONValue.self, from: Data(requestText.utf8))

        // Deliveries first, attempts second: an attempt and the status it set are committed together, so
        // reading in this order never shows a status without the attempt that set it.
        var deliveries: [StoredDelivery] = []
        for try await (deliveryID, channel, status, attemptCount, lastError, providerID, created, updated)
            in try await client.query(
                """
                SELECT id, channel, status, attempt_count, last_error, provider_message_id, created_at, updated_at
                FROM deliveries WHERE notification_id = \(id) ORDER BY created_at, channel
                """, logger: logger
            ).decode((UUID, String, String, Int, String?, String?, Date, Date).self)
        {
            deliveries.append(StoredDelivery(
                id: deliveryID, channel: channel, status: DeliveryStatus(rawValue: status) ?? .queued,
                attemptCount: attemptCount, lastError: lastError, providerMessageID: providerID, createdAt: created,
                updatedAt: updated, attempts: []))
        }
        var attemptsByDelivery: [UUID: [StoredAttempt]] = [:]
        for try await (deliveryID, number, started, finished, outcome, httpStatus, error, providerID, worker, provider, duration)
            in try await client.query(
                """
                SELECT delivery_id, number, started_at, finished_at, outcome, http_status, error,
                    provider_message_id, worker, provider, duration_ms
                FROM attempts WHERE notification_id = \(id) ORDER BY id
                """, logger: logger
            ).decode((UUID, Int, Date, Date, String, Int?, String?, String?, String, String, Double).self)
        {
            attemptsByDelivery[deliveryID, default: []].append(StoredAttempt(
                number: number, startedAt: started, finishedAt: finished, outcome: outcome, httpStatus: httpStatus,
                error: error, providerMessageID: providerID, worker: worker, provider: provider,
                durationMilliseconds: duration))
        }

        for index in deliveries.indices { deliveries[index].attempts = attemptsByDelivery[deliveries[index].id] ?? [] }
        return StoredNotification(
            id: id, createdAt: createdAt, configVersion: configVersion, document: document, deliveries: deliveries)
    }

    /// Whether PostgreSQL answers.
    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }
}

/// What one processed message leaves in the database.
public struct OutcomeRecord: Sendable {
    public var attempts: [AttemptRecord]
    /// Fallback deliveries made unnecessary by this outcome.
    public var cancelledDeliveries: [UUID]

    public init(attempts: [AttemptRecord], cancelledDeliveries: [UUID] = []) {
        self.attempts = attempts
        self.cancelledDeliveries = cancelledDeliveries
    }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
