import Foundation
import HeraldCore
import HeraldStore

/// The JSON bodies the API answers with.
struct AcceptedResponse: Codable, Sendable {
    struct Delivery: Codable, Sendable {
        var id: String
        var channel: String
        var status: String
    }
    var id: String
    var status: String
    var configVersion: String
    var rule: String?
    var strategy: String
    var deliveries: [Delivery]

    enum CodingKeys: String, CodingKey {
        case id, status, configVersion = "config_version", rule, strategy, deliveries
    }
}

struct NotificationResponse: Codable, Sendable {
    struct Attempt: Codable, Sendable {
        var number: Int
        var startedAt: String
        var finishedAt: String
        var durationMs: Double
        var outcome: String
        var httpStatus: Int?
        var error: String?
        var providerMessageId: String?
        var worker: String
        var provider: String

        enum CodingKeys: String, CodingKey {
            case number, startedAt = "started_at", finishedAt = "finished_at", durationMs = "duration_ms", outcome,
                httpStatus = "http_status", error, providerMessageId = "provider_message_id", worker, provider
        }
    }

    struct Delivery: Codable, Sendable {
        var id: String
        var channel: String
        var status: String
        var attemptCount: Int
        var lastError: String?
        var providerMessageId: String?
        var createdAt: String
        var updatedAt: String
        /// What was (or will be) sent: the message as rendered for this channel at accept.
        var message: MessageContent?
        var expiresAt: String?
        var attempts: [Attempt]

        enum CodingKeys: String, CodingKey {
            case id, channel, status, attemptCount = "attempt_count", lastError = "last_error",
                providerMessageId = "provider_message_id", createdAt = "created_at", updatedAt = "updated_at", message,
                expiresAt = "expires_at", attempts
        }
    }

    var id: String
    var status: String
    var createdAt: String
    var configVersion: String
    var request: JSONValue
    var deliveries: [Delivery]

    enum CodingKeys: String, CodingKey {
        case id, status, createdAt = "created_at", configVersion = "config_version", request, deliveries
    }

    init(_ stored: StoredNotification) {
        id = stored.id.lowercasedString
        createdAt = Timestamp.string(stored.createdAt)
        configVersion = stored.configVersion
        request = stored.document
        deliveries = stored.deliveries.map { delivery in
            Delivery(
                id: delivery.id.lowercasedString, channel: delivery.channel, status: delivery.status.rawValue,
                attemptCount: delivery.attemptCount, lastError: delivery.lastError,
                providerMessageId: delivery.providerMessageID, createdAt: Timestamp.string(delivery.createdAt),
                updatedAt: Timestamp.string(delivery.updatedAt), message: delivery.job?.message,
                expiresAt: delivery.job?.expiresAt.map(Timestamp.string),
                attempts: delivery.attempts.map { attempt in
                    Attempt(
                        number: attempt.number, startedAt: Timestamp.string(attempt.startedAt),
                        finishedAt: Timestamp.string(attempt.finishedAt), durationMs: attempt.durationMilliseconds,
                        outcome: attempt.outcome, httpStatus: attempt.httpStatus, error: attempt.error,
                        providerMessageId: attempt.providerMessageID, worker: attempt.worker, provider: attempt.provider)
                })
        }
        status = Self.aggregateStatus(stored.deliveries.map(\.status))
    }

    /// One word for the whole notification: `scheduled` (waiting for `send_at`), `accepted` (nothing
    /// tried yet), `processing`, `sent` (every delivery that ran succeeded; fallbacks not needed are
    /// cancelled), `failed` (none succeeded), `partially_failed`, `cancelled`, `expired`.
    static func aggregateStatus(_ statuses: [DeliveryStatus]) -> String {
        let started = statuses.filter { $0 != .pending }
        if !started.isEmpty && started.allSatisfy({ $0 == .scheduled }) { return "scheduled" }
        if started.allSatisfy({ $0 == .queued }) { return "accepted" }
        guard statuses.allSatisfy(\.isTerminal) else { return "processing" }
        let succeeded = statuses.filter { $0 == .sent || $0 == .delivered }.count
        if succeeded > 0 {
            return statuses.allSatisfy({ [.sent, .delivered, .cancelled].contains($0) }) ? "sent" : "partially_failed"
        }
        if statuses.allSatisfy({ $0 == .cancelled }) { return "cancelled" }
        if statuses.allSatisfy({ $0 == .expired || $0 == .cancelled }) { return "expired" }
        return "failed"
    }
}

struct CancelResponse: Codable, Sendable {
    /// The deliveries this request cancelled (those in flight finish and are not listed).
    var cancelled: [String]
    var notification: NotificationResponse
}

struct ReplayResponse: Codable, Sendable {
    /// The deliveries queued again.
    var replayed: [String]
}

struct DeadLetterPage: Codable, Sendable {
    struct Item: Codable, Sendable {
        var deliveryId: String
        var notificationId: String
        var channel: String
        var attemptCount: Int
        var lastError: String?
        var failedAt: String

        enum CodingKeys: String, CodingKey {
            case deliveryId = "delivery_id", notificationId = "notification_id", channel, attemptCount = "attempt_count",
                lastError = "last_error", failedAt = "failed_at"
        }

        init(_ letter: DeadLetter) {
            deliveryId = letter.id.lowercasedString
            notificationId = letter.notificationID.lowercasedString
            channel = letter.channel
            attemptCount = letter.attemptCount
            lastError = letter.lastError
            failedAt = Timestamp.string(letter.failedAt)
        }
    }

    var items: [Item]
    /// Pass as `cursor` for the next page; absent on the last page.
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case items, nextCursor = "next_cursor"
    }
}
