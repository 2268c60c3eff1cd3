import Foundation
import HeraldCore
import Logging
import PostgresNIO

public enum AcceptOutcome: Sendable, Hashable {
    case stored
    /// The idempotency key was seen before (for this tenant); this is the notification it named.
    case duplicate(StoredIdempotency)
}

/// What `accept` stored: an outcome per notification, in order, and the outbox rows to publish now.
public struct AcceptResult: Sendable {
    public var outcomes: [AcceptOutcome]
    /// Rows of deliveries due now, written due a grace period later: publish, then `OutboxStore.remove`.
    public var publishNow: [OutboxEntry]
}

/// What the first request with an idempotency key left behind.
public struct StoredIdempotency: Sendable, Hashable {
    public var id: UUID
    /// SHA-256 of the first request's body (nil for notifications stored before request hashes).
    public var requestHash: String?
    /// The answer the first request got.
    public var response: String?
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
    /// The job as stored at accept: the rendered message that was (or will be) sent.
    public var job: DeliveryJob?
    public var attempts: [StoredAttempt]
    /// What the provider reported afterwards (delivery receipts), oldest first.
    public var events: [StoredEvent] = []
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
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Stores notifications, their deliveries and outbox rows in one statement (one transaction).
    /// A notification whose idempotency key exists already is not stored again.
    public func accept(_ batch: [NewNotification]) async throws -> [AcceptOutcome] {
        try await accept(batch, publishingDirectly: nil).outcomes
    }

    /// `accept(_:)`, and with `grace` the outbox rows of deliveries due now come back, for the caller to
    /// publish at once (`publishNow`) and then remove: their rows are written due `grace` later, so the
    /// relay publishes one only if the caller did not remove it by then (it crashed, or the broker was
    /// unreachable). The relay then never has to find a fresh row, and the row is deleted by its key.
    public func accept(_ batch: [NewNotification], publishingDirectly grace: Duration?) async throws -> AcceptResult {
        var statement = AcceptStatement()
        var direct: [UUID: (channel: String, job: String)] = [:]
        let graceSeconds = grace?.timeInterval
        for notification in batch {
            statement.ids.append(notification.id)
            statement.tenants.append(notification.tenant)
            statement.hashes.append(notification.requestHash ?? "")
            statement.responses.append(notification.response ?? "")
            statement.createdAts.append(notification.createdAt)
            statement.keys.append(notification.idempotencyKey ?? "")
            statement.versions.append(notification.configVersion)
            statement.documents.append(JSONWriter.string(notification.document))
            for delivery in notification.deliveries {
                statement.deliveryIDs.append(delivery.id)
                statement.deliveryNotificationIDs.append(notification.id)
                statement.deliveryTenants.append(notification.tenant)
                statement.channels.append(delivery.channel)
                statement.statuses.append(delivery.status.rawValue)
                statement.jobs.append(delivery.job)
                statement.publishes.append(delivery.publishAt != nil)
                var publishAt = delivery.publishAt ?? notification.createdAt
                if let graceSeconds, delivery.status != .scheduled, let due = delivery.publishAt, due <= notification.createdAt {
                    direct[delivery.id] = (delivery.channel, delivery.job)
                    publishAt = notification.createdAt.addingTimeInterval(graceSeconds)
                }
                statement.publishAts.append(publishAt)
                statement.purposes.append((delivery.status == .scheduled ? OutboxPurpose.scheduled : .deliver).rawValue)
            }
        }
        let rows = try await client.execute(statement, logger: logger)
        var stored = Set<UUID>()
        var publishNow: [OutboxEntry] = []
        for try await (id, outboxID) in rows {
            guard let outboxID else {
                stored.insert(id)
                continue
            }
            if let (channel, job) = direct[id] {
                publishNow.append(OutboxEntry(id: outboxID, deliveryID: id, channel: channel, attempt: 1, purpose: .deliver, payload: job))
            }
        }

        let duplicates = batch.filter { !stored.contains($0.id) && $0.idempotencyKey != nil }
        var existing: [String: StoredIdempotency] = [:]
        if !duplicates.isEmpty {
            let duplicateTenants = duplicates.map(\.tenant), duplicateKeys = duplicates.map { $0.idempotencyKey ?? "" }
            for try await (tenant, key, id, hash, response) in try await client.query(
                """
                SELECT k.tenant, k.key, n.id, n.request_hash, n.response
                FROM idempotency_keys k JOIN unnest(\(duplicateTenants)::text[], \(duplicateKeys)::text[]) AS t(tenant, key)
                    ON k.tenant = t.tenant AND k.key = t.key
                JOIN notifications n ON n.id = k.notification_id
                """,
                logger: logger
            ).decode((String, String, UUID, String?, String?).self) {
                existing[tenant + "\u{0}" + key] = StoredIdempotency(id: id, requestHash: hash, response: response)
            }
        }
        let outcomes: [AcceptOutcome] = try batch.map { notification in
            if stored.contains(notification.id) { return .stored }
            guard let key = notification.idempotencyKey, let original = existing[notification.tenant + "\u{0}" + key] else {
                throw StoreError(message: "notification \(notification.id) was neither stored nor a duplicate")
            }
            return .duplicate(original)
        }
        return AcceptResult(outcomes: outcomes, publishNow: publishNow)
    }

    /// Claims deliveries for attempts, in one statement: each claimable delivery whose newest
    /// recorded attempt is older than the requested one moves to `sending` under this worker's
    /// lease. Returns, per request, what the claim found (nil: no such delivery).
    ///
    /// Committed without waiting for the disk (`synchronous_commit = off`): a claim lost in a
    /// database crash only means the delivery looks unclaimed again, which the attempt numbers and
    /// the next claim handle; the outcome itself is always written durably. One statement, one round
    /// trip: `set_config(…, true)` is `SET LOCAL` for the statement's own transaction.
    public func claim(_ requests: [ClaimRequest], worker: String) async throws -> [ClaimResult?] {
        guard !requests.isEmpty else { return [] }
        let ids = requests.map(\.deliveryID)
        var results = [ClaimResult?](repeating: nil, count: requests.count)
        let (lowest, highest) = UUID.span(ids)!
        let statement = ClaimStatement(
            ids: ids, attempts: requests.map(\.attempt), leases: requests.map { $0.lease.timeInterval }, lowest: lowest,
            highest: highest, worker: worker)
        for try await (position, claimed, status, attemptCount, attemptBase, claimedBy, leaseRemaining, throttledTries)
            in try await client.execute(statement, logger: logger)
        {
            results[position - 1] = ClaimResult(
                claimed: claimed, status: DeliveryStatus(rawValue: status) ?? .queued, attemptCount: attemptCount,
                attemptBase: attemptBase, claimedBy: claimedBy,
                leaseRemaining: leaseRemaining.map { .milliseconds(Int64(($0 * 1000).rounded())) },
                throttledTries: throttledTries)
        }
        return results
    }

    /// Writes settlements in one transaction: attempts appended, statuses moved (a terminal status is
    /// never overwritten), outbox rows added for retries and fallbacks, fallbacks activated or cancelled.
    public func settle(_ settlements: [Settlement]) async throws {
        guard !settlements.isEmpty else { return }
        let attempts = settlements.flatMap(\.attempts)
        let moved = settlements.filter { $0.status != nil }
        let enqueue = settlements.flatMap(\.enqueue)
        let activate = settlements.flatMap(\.activate)
        let cancel = settlements.flatMap(\.cancel)
        // The common settlement (attempts and statuses only) is one statement: its own transaction, one round trip.
        if enqueue.isEmpty && activate.isEmpty && cancel.isEmpty {
            try await client.withConnection { connection in
                try await Self.recordAttempts(attempts, moving: moved, on: connection, logger: logger)
            }
            return
        }
        try await client.withTransaction(logger: logger) { connection in
            if !attempts.isEmpty || !moved.isEmpty {
                try await Self.recordAttempts(attempts, moving: moved, on: connection, logger: logger)
            }
            if !enqueue.isEmpty { try await Self.enqueue(enqueue, on: connection, logger: logger) }
            if !activate.isEmpty {
                try await connection.query(
                    """
                    UPDATE deliveries SET status = \(DeliveryStatus.queued.rawValue), updated_at = now()
                    WHERE id = ANY(\(activate)::uuid[]) AND status = \(DeliveryStatus.pending.rawValue)
                    """, logger: logger)
            }
            if !cancel.isEmpty {
                try await connection.query(
                    """
                    WITH c AS (
                        UPDATE deliveries SET status = \(DeliveryStatus.cancelled.rawValue),
                            last_error = 'not needed: the notification was settled by an earlier channel', updated_at = now()
                        WHERE id = ANY(\(cancel)::uuid[]) AND status = ANY(\(DeliveryStatus.names(DeliveryStatus.cancellable))::text[])
                        RETURNING id
                    )
                    DELETE FROM outbox WHERE delivery_id IN (SELECT id FROM c)
                    """, logger: logger)
            }
        }
    }

    private static func recordAttempts(
        _ attempts: [AttemptRecord], moving settlements: [Settlement], on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard let (lowest, highest) = UUID.span(settlements.map(\.deliveryID) + attempts.map(\.deliveryID)) else { return }
        try await connection.run(
            RecordAttemptsStatement(attempts: attempts, moved: settlements, lowest: lowest, highest: highest), logger: logger)
    }

    private static func enqueue(_ rows: [OutboxEnqueue], on connection: PostgresConnection, logger: Logger) async throws {
        let ids = rows.map(\.deliveryID)
        let attempts = rows.map(\.attempt)
        let notBefore = rows.map(\.notBefore)
        let purposes = rows.map(\.purpose.rawValue)
        guard let (lowest, highest) = UUID.span(ids) else { return }
        // `id = ANY(ids)` as well as the range: on the worker's pool this is planned generically too
        // (PreparedStatements.swift says why a range alone is not enough).
        try await connection.query(
            """
            INSERT INTO outbox (delivery_id, channel, attempt, not_before, purpose)
            SELECT t.id, d.channel, t.attempt, t.not_before, t.purpose
            FROM unnest(\(ids)::uuid[], \(attempts)::int[], \(notBefore)::timestamptz[], \(purposes)::text[])
                AS t(id, attempt, not_before, purpose)
            JOIN deliveries d ON d.id = t.id AND d.id = ANY(\(ids)::uuid[]) AND d.id BETWEEN \(lowest) AND \(highest)
            """, logger: logger)
    }

    /// Cancels a notification's deliveries that have not started: `pending`, `scheduled`, `queued`
    /// and `retrying` become `cancelled` and their outbox rows go; one in `sending` finishes.
    /// Returns the cancelled delivery ids, or nil when there is no such notification.
    public func cancel(notificationID: UUID, tenant: String? = nil) async throws -> [UUID]? {
        try await client.withTransaction(logger: logger) { connection in
            var exists = false
            for try await _ in try await connection.query(
                "SELECT 1 FROM notifications WHERE id = \(notificationID) AND (\(tenant ?? "") = '' OR tenant = \(tenant ?? ""))",
                logger: logger
            ).decode(Int.self) {
                exists = true
            }
            guard exists else { return nil }
            var cancelled: [UUID] = []
            for try await id in try await connection.query(
                """
                WITH c AS (
                    UPDATE deliveries SET status = \(DeliveryStatus.cancelled.rawValue), last_error = 'cancelled by request',
                        updated_at = now()
                    WHERE notification_id = \(notificationID)
                        AND status = ANY(\(DeliveryStatus.names(DeliveryStatus.cancellable))::text[])
                    RETURNING id
                ), o AS (
                    DELETE FROM outbox WHERE delivery_id IN (SELECT id FROM c)
                )
                SELECT id FROM c
                """, logger: logger
            ).decode(UUID.self) {
                cancelled.append(id)
            }
            return cancelled
        }
    }

    /// Sends dead letters again: each selected `failed` delivery becomes `queued` with a fresh attempt
    /// budget (its attempts so far stay, numbered before the new ones) and an outbox row for the next
    /// attempt number. Returns the replayed delivery ids.
    public func replay(_ selection: DeadLetterSelection) async throws -> [UUID] {
        let limit = min(max(selection.limit, 1), DeadLetterSelection.maximumLimit)
        let failed = DeliveryStatus.failed.rawValue
        let ids = selection.deliveryIDs ?? []
        let byID = selection.deliveryIDs != nil
        var replayed: [UUID] = []
        for try await id in try await client.query(
            """
            WITH s AS (
                SELECT id FROM deliveries
                WHERE status = \(failed) AND job IS NOT NULL
                    AND (\(selection.tenant ?? "") = '' OR tenant = \(selection.tenant ?? ""))
                    AND (NOT \(byID) OR id = ANY(\(ids)::uuid[]))
                    AND (\(selection.channel ?? "") = '' OR channel = \(selection.channel ?? ""))
                    AND updated_at >= \(selection.since ?? Date.distantPast) AND updated_at < \(selection.until ?? Date.distantFuture)
                ORDER BY updated_at, id LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), r AS (
                UPDATE deliveries d SET status = \(DeliveryStatus.queued.rawValue), attempt_base = d.attempt_count,
                    last_error = NULL, updated_at = now()
                FROM s WHERE d.id = s.id
                RETURNING d.id, d.channel, d.attempt_count
            ), o AS (
                INSERT INTO outbox (delivery_id, channel, attempt, not_before, purpose)
                SELECT id, channel, attempt_count + 1, now(), \(OutboxPurpose.replay.rawValue) FROM r
            )
            SELECT id FROM r
            """, logger: logger
        ).decode(UUID.self) {
            replayed.append(id)
        }
        return replayed
    }

    /// Failed deliveries (the dead letters), oldest failure first, after `cursor`.
    public func deadLetters(_ selection: DeadLetterSelection, after cursor: ListingCursor?) async throws -> [DeadLetter] {
        let limit = min(max(selection.limit, 1), DeadLetterSelection.maximumLimit)
        let failed = DeliveryStatus.failed.rawValue
        let ids = selection.deliveryIDs ?? []
        let byID = selection.deliveryIDs != nil
        var letters: [DeadLetter] = []
        for try await (id, notificationID, channel, attemptCount, lastError, failedAt) in try await client.query(
            """
            SELECT id, notification_id, channel, attempt_count, last_error, updated_at FROM deliveries
            WHERE status = \(failed)
                AND (\(selection.tenant ?? "") = '' OR tenant = \(selection.tenant ?? ""))
                AND (NOT \(byID) OR id = ANY(\(ids)::uuid[]))
                AND (\(selection.channel ?? "") = '' OR channel = \(selection.channel ?? ""))
                AND updated_at >= \(selection.since ?? Date.distantPast) AND updated_at < \(selection.until ?? Date.distantFuture)
                AND (updated_at, id) > (\(cursor?.instant ?? Date.distantPast), \(cursor?.id ?? ListingCursor.lowest))
            ORDER BY updated_at, id LIMIT \(limit)
            """, logger: logger
        ).decode((UUID, UUID, String, Int, String?, Date).self) {
            letters.append(DeadLetter(
                id: id, notificationID: notificationID, channel: channel, attemptCount: attemptCount, lastError: lastError,
                failedAt: failedAt))
        }
        return letters
    }

    /// Keeps a message that can't be decoded (it would fail forever), so the queue moves on and the
    /// message can still be inspected.
    public func recordPoison(channel: String, body: [UInt8], messageID: String?, reason: String) async throws {
        try await client.query(
            """
            INSERT INTO poison_messages (channel, message_id, reason, body)
            VALUES (\(channel), \(messageID ?? ""), \(reason), \(ByteBuffer(bytes: body)))
            """, logger: logger)
    }

    /// The notification with its deliveries and attempts, or nil.
    public func notification(id: UUID, tenant: String? = nil) async throws -> StoredNotification? {
        var header: (Date, String, String)?
        for try await row in try await client.query(
            """
            SELECT created_at, config_version, request::text FROM notifications
            WHERE id = \(id) AND (\(tenant ?? "") = '' OR tenant = \(tenant ?? ""))
            """, logger: logger
        ).decode((Date, String, String).self) {
            header = row
        }
        guard let (createdAt, configVersion, requestText) = header else { return nil }
        let document = try JSONDecoder().decode(JSONValue.self, from: Data(requestText.utf8))

        // Deliveries first, attempts second: an attempt and the status it set are committed together, so
        // reading in this order never shows a status without the attempt that set it.
        var deliveries: [StoredDelivery] = []
        for try await (deliveryID, channel, status, attemptCount, lastError, providerID, created, updated, job)
            in try await client.query(
                """
                SELECT id, channel, status, attempt_count, last_error, provider_message_id, created_at, updated_at, job
                FROM deliveries WHERE notification_id = \(id) AND id >= \(id.timeFloor) ORDER BY created_at, id
                """, logger: logger
            ).decode((UUID, String, String, Int, String?, String?, Date, Date, String?).self)
        {
            deliveries.append(StoredDelivery(
                id: deliveryID, channel: channel, status: DeliveryStatus(rawValue: status) ?? .queued,
                attemptCount: attemptCount, lastError: lastError, providerMessageID: providerID, createdAt: created,
                updatedAt: updated, job: job.flatMap { try? DeliveryJob.decode(Array($0.utf8)) }, attempts: []))
        }
        var attemptsByDelivery: [UUID: [StoredAttempt]] = [:]
        for try await (deliveryID, number, started, finished, outcome, httpStatus, error, providerID, worker, provider, duration)
            in try await client.query(
                """
                SELECT delivery_id, number, started_at, finished_at, outcome, http_status, error,
                    provider_message_id, worker, provider, duration_ms
                FROM attempts WHERE notification_id = \(id) AND delivery_id >= \(id.timeFloor) ORDER BY id
                """, logger: logger
            ).decode((UUID, Int, Date, Date, String, Int?, String?, String?, String, String, Double).self)
        {
            attemptsByDelivery[deliveryID, default: []].append(StoredAttempt(
                number: number, startedAt: started, finishedAt: finished, outcome: outcome, httpStatus: httpStatus,
                error: error, providerMessageID: providerID, worker: worker, provider: provider,
                durationMilliseconds: duration))
        }

        // Events last: a receipt follows the attempt it reports on.
        let eventsByDelivery = try await ReceiptStore(client: client, logger: logger).events(notificationID: id)
        for index in deliveries.indices {
            deliveries[index].attempts = attemptsByDelivery[deliveries[index].id] ?? []
            deliveries[index].events = eventsByDelivery[deliveries[index].id] ?? []
        }
        return StoredNotification(
            id: id, createdAt: createdAt, configVersion: configVersion, document: document, deliveries: deliveries)
    }

    /// A tenant's notifications, newest first, after `cursor`: each with its deliveries' ids, channels
    /// and statuses.
    public func list(_ listing: NotificationListing) async throws -> [NotificationSummary] {
        let limit = min(max(listing.limit, 1), NotificationListing.maximumLimit)
        var summaries: [NotificationSummary] = []
        for try await (id, createdAt, template) in try await client.query(
            """
            SELECT n.id, n.created_at, n.request ->> 'template' FROM notifications n
            WHERE n.tenant = \(listing.tenant)
                AND n.created_at >= \(listing.since ?? Date.distantPast) AND n.created_at < \(listing.until ?? Date.distantFuture)
                AND (\(listing.template ?? "") = '' OR n.request ->> 'template' = \(listing.template ?? ""))
                AND (\(listing.status?.rawValue ?? "") = '' AND \(listing.channel ?? "") = '' OR EXISTS (
                    SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
                        AND (\(listing.status?.rawValue ?? "") = '' OR d.status = \(listing.status?.rawValue ?? ""))
                        AND (\(listing.channel ?? "") = '' OR d.channel = \(listing.channel ?? ""))))
                AND (n.created_at, n.id) < (\(listing.cursor?.instant ?? Date.distantFuture), \(listing.cursor?.id ?? ListingCursor.highest))
            ORDER BY n.created_at DESC, n.id DESC LIMIT \(limit)
            """, logger: logger
        ).decode((UUID, Date, String?).self) {
            summaries.append(NotificationSummary(id: id, createdAt: createdAt, template: template, deliveries: []))
        }
        guard !summaries.isEmpty else { return [] }
        let ids = summaries.map(\.id)
        var byNotification: [UUID: [NotificationSummary.Delivery]] = [:]
        for try await (id, notificationID, channel, status) in try await client.query(
            "SELECT id, notification_id, channel, status FROM deliveries WHERE notification_id = ANY(\(ids)::uuid[]) ORDER BY created_at, id",
            logger: logger
        ).decode((UUID, UUID, String, String).self) {
            byNotification[notificationID, default: []].append(
                .init(id: id, channel: channel, status: DeliveryStatus(rawValue: status) ?? .queued))
        }
        for index in summaries.indices { summaries[index].deliveries = byNotification[summaries[index].id] ?? [] }
        return summaries
    }

    /// A delivery's status, or nil when there is no such delivery.
    public func deliveryStatus(id: UUID, tenant: String? = nil) async throws -> DeliveryStatus? {
        var status: DeliveryStatus?
        for try await text in try await client.query(
            "SELECT status FROM deliveries WHERE id = \(id) AND (\(tenant ?? "") = '' OR tenant = \(tenant ?? ""))", logger: logger
        ).decode(String.self) {
            status = DeliveryStatus(rawValue: text)
        }
        return status
    }

    /// Whether PostgreSQL answers.
    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// Which dead letters (failed deliveries) to list or replay.
public struct DeadLetterSelection: Sendable, Hashable {
    public static let maximumLimit = 1000
    /// Only this tenant's (nil: every tenant — operators' CLI).
    public var tenant: String?
    public var channel: String?
    public var since: Date?
    public var until: Date?
    /// Only these deliveries (nil: any).
    public var deliveryIDs: [UUID]?
    public var limit: Int

    public init(
        tenant: String? = nil, channel: String? = nil, since: Date? = nil, until: Date? = nil, deliveryIDs: [UUID]? = nil,
        limit: Int = 100
    ) {
        self.tenant = tenant
        self.channel = channel
        self.since = since
        self.until = until
        self.deliveryIDs = deliveryIDs
        self.limit = limit
    }
}

public struct DeadLetter: Sendable, Hashable {
    public var id: UUID
    public var notificationID: UUID
    public var channel: String
    public var attemptCount: Int
    public var lastError: String?
    public var failedAt: Date

    public var cursor: ListingCursor { ListingCursor(instant: failedAt, id: id) }
}

/// A position in a listing ordered by (instant, id) — the last item of a page, as `next_cursor`:
/// notifications by creation (newest first), dead letters by failure (oldest first).
public struct ListingCursor: Sendable, Hashable {
    public var instant: Date
    public var id: UUID

    static let lowest = UUID(uuidString: "00000000-0000-0000-0000-000000000000")!
    static let highest = UUID(uuidString: "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")!

    public init(instant: Date, id: UUID) {
        self.instant = instant
        self.id = id
    }

    /// `<microseconds since 1970>.<id>`, base64url without padding.
    public var token: String {
        Base64URL.encode(Array("\(Int64((instant.timeIntervalSince1970 * 1_000_000).rounded())).\(id.lowercasedString)".utf8))
    }

    public init?(token: String) {
        guard token.count <= 200, let data = Base64URL.decode(token), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else { return nil }
        self.init(instant: Date(timeIntervalSince1970: Double(micros) / 1_000_000), id: id)
    }
}

/// Which notifications to list.
public struct NotificationListing: Sendable, Hashable {
    public static let maximumLimit = 1000
    public var tenant: String
    /// Notifications with a delivery in this status.
    public var status: DeliveryStatus?
    /// Notifications with a delivery on this channel.
    public var channel: String?
    public var template: String?
    public var since: Date?
    public var until: Date?
    public var limit: Int
    public var cursor: ListingCursor?

    public init(tenant: String, limit: Int = 50) {
        self.tenant = tenant
        self.limit = limit
    }
}

public struct NotificationSummary: Sendable, Hashable {
    public struct Delivery: Sendable, Hashable {
        public var id: UUID
        public var channel: String
        public var status: DeliveryStatus
    }

    public var id: UUID
    public var createdAt: Date
    public var template: String?
    public var deliveries: [Delivery]

    public var cursor: ListingCursor { ListingCursor(instant: createdAt, id: id) }
}

/// Where a notification listing goes on (newest first): before this creation time and id.
