import Foundation
import HeraldCore
import Logging
import PostgresNIO

/// A provider's report about one delivery, verified by the gateway, to be recorded.
public struct ReceiptReport: Sendable, Hashable {
    /// Herald's delivery id (from the callback URL's token, or a signed body); nil: find it by `providerMessageID`.
    public var deliveryID: UUID?
    public var providerMessageID: String?
    public var channel: String
    public var provider: String
    /// The provider's own word (`1`, `delivered`, `undelivered`, …).
    public var providerStatus: String
    /// What it means; nil: an intermediate report, recorded without changing the status.
    public var outcome: ReceiptOutcome?
    public var detail: String?

    public init(
        deliveryID: UUID?, providerMessageID: String?, channel: String, provider: String, providerStatus: String,
        outcome: ReceiptOutcome?, detail: String?
    ) {
        self.deliveryID = deliveryID
        self.providerMessageID = providerMessageID
        self.channel = channel
        self.provider = provider
        self.providerStatus = providerStatus
        self.outcome = outcome
        self.detail = detail
    }
}

/// What recording a report did.
public struct AppliedReceipt: Sendable, Hashable {
    public var deliveryID: UUID
    public var previousStatus: DeliveryStatus
    public var status: DeliveryStatus
    /// The same provider status was reported for this delivery before: nothing was recorded again.
    public var duplicate: Bool
    /// Why the status did not move, when it didn't.
    public var note: String?

    public var changed: Bool { status != previousStatus }
}

/// A delivery's receipt events, as the API shows them.
public struct StoredEvent: Sendable, Hashable {
    public var kind: String
    public var provider: String
    public var providerStatus: String
    public var outcome: String?
    public var previousStatus: String
    public var resultingStatus: String
    public var providerMessageID: String?
    public var detail: String?
    public var receivedAt: Date
}

/// Delivery receipts in PostgreSQL: each report is an event in the delivery's history
/// (`delivery_events`, append-only), and may move its status by `DeliveryStatus.afterReceipt`.
public struct ReceiptStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Records `report` in one transaction, the delivery's row locked so that concurrent reports (and
    /// the worker's settlement) apply one after the other. nil when the channel has no such delivery.
    public func apply(_ report: ReceiptReport) async throws -> AppliedReceipt? {
        try await client.withTransaction(logger: logger) { connection in
            var found: (UUID, UUID, String, String, String?)?
            for try await row in try await connection.query(
                """
                SELECT id, notification_id, tenant, status, provider_message_id FROM deliveries
                WHERE channel = \(report.channel)
                    AND (id = \(report.deliveryID ?? Self.none)
                         OR (\(report.deliveryID == nil) AND provider_message_id = \(report.providerMessageID ?? "")))
                LIMIT 1
                FOR UPDATE
                """, logger: logger
            ).decode((UUID, UUID, String, String, String?).self) {
                found = row
            }
            guard let (deliveryID, notificationID, tenant, statusText, storedMessageID) = found else { return nil }
            let previous = DeliveryStatus(rawValue: statusText) ?? .queued
            var next = report.outcome.flatMap { previous.afterReceipt($0) }
            var note: String?
            if report.outcome == nil {
                note = "an intermediate report: the status stays"
            } else if next == nil {
                note = "a \(previous.rawValue) delivery is not moved by a receipt"
            }
            // A report about an earlier message of this delivery (before a replay sent it again) is history.
            if let reported = report.providerMessageID, !reported.isEmpty, let stored = storedMessageID, stored != reported, next != nil {
                next = nil
                note = "reported for provider message \(reported), but the delivery's message is \(stored): the status stays"
            }
            let resulting = next ?? previous
            var inserted = false
            for try await _ in try await connection.query(
                """
                INSERT INTO delivery_events (delivery_id, notification_id, tenant, channel, provider, kind, provider_status,
                    outcome, previous_status, resulting_status, provider_message_id, detail)
                VALUES (\(deliveryID), \(notificationID), \(tenant), \(report.channel), \(report.provider), 'receipt',
                    \(report.providerStatus), \(report.outcome?.rawValue), \(previous.rawValue), \(resulting.rawValue),
                    \(report.providerMessageID), \(report.detail))
                ON CONFLICT (delivery_id, provider, provider_status) DO NOTHING
                RETURNING id
                """, logger: logger
            ).decode(Int64.self) {
                inserted = true
            }
            guard inserted else {
                // Idempotent: the first copy of this report already did whatever it does.
                return AppliedReceipt(deliveryID: deliveryID, previousStatus: previous, status: previous, duplicate: true, note: "a duplicate report")
            }
            if let next {
                let lastError: String? =
                    next == .delivered ? nil : "the provider reported \(report.providerStatus)" + (report.detail.map { ": \($0)" } ?? "")
                try await connection.query(
                    """
                    UPDATE deliveries SET status = \(next.rawValue), last_error = \(lastError), updated_at = now(),
                        provider_message_id = COALESCE(provider_message_id, NULLIF(\(report.providerMessageID ?? ""), ''))
                    WHERE id = \(deliveryID)
                    """, logger: logger)
                // A retry waiting in the outbox is not needed any more (its claim would skip it anyway).
                try await connection.query("DELETE FROM outbox WHERE delivery_id = \(deliveryID)", logger: logger)
            }
            return AppliedReceipt(deliveryID: deliveryID, previousStatus: previous, status: resulting, duplicate: false, note: note)
        }
    }

    /// The events of a notification's deliveries, oldest first.
    public func events(notificationID: UUID) async throws -> [UUID: [StoredEvent]] {
        var events: [UUID: [StoredEvent]] = [:]
        for try await (deliveryID, kind, provider, status, outcome, previous, resulting, messageID, detail, received) in try await client.query(
            """
            SELECT delivery_id, kind, provider, provider_status, outcome, previous_status, resulting_status,
                provider_message_id, detail, received_at
            FROM delivery_events WHERE notification_id = \(notificationID) AND delivery_id >= \(notificationID.timeFloor) ORDER BY id
            """, logger: logger
        ).decode((UUID, String, String, String, String?, String, String, String?, String?, Date).self) {
            events[deliveryID, default: []].append(StoredEvent(
                kind: kind, provider: provider, providerStatus: status, outcome: outcome, previousStatus: previous,
                resultingStatus: resulting, providerMessageID: messageID, detail: detail, receivedAt: received))
        }
        return events
    }

    static let none = UUID(uuidString: "00000000-0000-0000-0000-000000000000")!
}
