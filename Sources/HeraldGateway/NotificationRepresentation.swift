import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviderModel
import HeraldStore

// The JSON bodies the API answers with (described in openapi.yaml).

/// A delivery named in an answer: its id, channel and status.
struct DeliveryReference: Codable, Sendable {
    var id: String
    var channel: String
    var status: String
}

struct AcceptedResponse: Codable, Sendable {
    typealias Delivery = DeliveryReference
    var id: String
    var status: String
    var configVersion: String
    var rule: String?
    var strategy: String
    var deliveries: [Delivery]

    enum CodingKeys: String, CodingKey {
        case id, status, configVersion = "config_version", rule, strategy, deliveries
    }

    /// The 202 body, written by the one JSON writer (this is on every accept: no Foundation encoder).
    var text: String {
        var object: [String: JSONValue] = [
            "id": .string(id), "status": .string(status), "config_version": .string(configVersion), "strategy": .string(strategy),
            "deliveries": .array(deliveries.map { .object(["id": .string($0.id), "channel": .string($0.channel), "status": .string($0.status)]) }),
        ]
        if let rule { object["rule"] = .string(rule) }
        return JSONWriter.string(.object(object))
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

    /// A delivery receipt (or another report from the provider after the attempt).
    struct Event: Codable, Sendable {
        var type: String
        var provider: String
        var providerStatus: String
        var outcome: String?
        var previousStatus: String
        var status: String
        var providerMessageId: String?
        var detail: String?
        var receivedAt: String

        enum CodingKeys: String, CodingKey {
            case type, provider, providerStatus = "provider_status", outcome, previousStatus = "previous_status", status,
                providerMessageId = "provider_message_id", detail, receivedAt = "received_at"
        }

        init(_ event: StoredEvent) {
            type = event.kind
            provider = event.provider
            providerStatus = event.providerStatus
            outcome = event.outcome
            previousStatus = event.previousStatus
            status = event.resultingStatus
            providerMessageId = event.providerMessageID
            detail = event.detail
            receivedAt = Timestamp.string(event.receivedAt)
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
        /// The template locale the message was rendered in (absent for inline messages).
        var locale: String?
        var expiresAt: String?
        var attempts: [Attempt]
        var events: [Event]

        enum CodingKeys: String, CodingKey {
            case id, channel, status, attemptCount = "attempt_count", lastError = "last_error",
                providerMessageId = "provider_message_id", createdAt = "created_at", updatedAt = "updated_at", message,
                locale, expiresAt = "expires_at", attempts, events
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
                locale: delivery.job?.locale, expiresAt: delivery.job?.expiresAt.map(Timestamp.string),
                attempts: delivery.attempts.map { attempt in
                    Attempt(
                        number: attempt.number, startedAt: Timestamp.string(attempt.startedAt),
                        finishedAt: Timestamp.string(attempt.finishedAt), durationMs: attempt.durationMilliseconds,
                        outcome: attempt.outcome, httpStatus: attempt.httpStatus, error: attempt.error,
                        providerMessageId: attempt.providerMessageID, worker: attempt.worker, provider: attempt.provider)
                },
                events: delivery.events.map(Event.init))
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
            guard statuses.allSatisfy({ [.sent, .delivered, .cancelled].contains($0) }) else { return "partially_failed" }
            // Every delivery that ran was confirmed by its provider's receipt.
            return statuses.allSatisfy({ [.delivered, .cancelled].contains($0) }) ? "delivered" : "sent"
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

/// One page of a listing: its items, and the cursor of the next page when more follow.
struct Page<Item: Encodable & Sendable>: Encodable, Sendable {
    var items: [Item]
    /// Pass as `cursor` for the next page; absent on the last page.
    var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case items, nextCursor = "next_cursor"
    }
}

/// A dead letter in `GET /v1/deadletters`.
struct DeadLetterItem: Encodable, Sendable {
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

/// A notification in `GET /v1/notifications`.
struct NotificationSummaryItem: Encodable, Sendable {
    typealias Delivery = DeliveryReference

    var id: String
    var status: String
    var createdAt: String
    var template: String?
    var deliveries: [Delivery]

    enum CodingKeys: String, CodingKey {
        case id, status, createdAt = "created_at", template, deliveries
    }

    init(_ summary: NotificationSummary) {
        id = summary.id.lowercasedString
        status = NotificationResponse.aggregateStatus(summary.deliveries.map(\.status))
        createdAt = Timestamp.string(summary.createdAt)
        template = summary.template
        deliveries = summary.deliveries.map {
            Delivery(id: $0.id.lowercasedString, channel: $0.channel, status: $0.status.rawValue)
        }
    }
}

/// One result per item of a batch, in the order of the request.
struct BatchResponse: Encodable, Sendable {
    struct Item: Encodable, Sendable {
        var index: Int
        /// `accepted`, `duplicate` (its idempotency key was used before, for the same request) or `rejected`.
        var status: String
        var id: String?
        /// The accepted notification as `POST /v1/notifications` would answer it.
        var notification: JSONValue?
        var errors: [FieldError]?

        static func accepted(_ index: Int, _ response: String) -> Item {
            let document = try? JSONParser.parse(Array(response.utf8))
            return Item(index: index, status: "accepted", id: document?["id"]?.stringValue, notification: document, errors: nil)
        }

        static func duplicate(_ index: Int, _ id: UUID, _ response: String?) -> Item {
            Item(
                index: index, status: "duplicate", id: id.lowercasedString,
                notification: response.flatMap { try? JSONParser.parse(Array($0.utf8)) }, errors: nil)
        }

        static func rejected(_ index: Int, _ errors: [FieldError]) -> Item {
            Item(index: index, status: "rejected", id: nil, notification: nil, errors: errors)
        }
    }

    var accepted: Int
    var rejected: Int
    var duplicates: Int
    var results: [Item]
}

struct ChannelsResponse: Encodable, Sendable {
    struct Channel: Encodable, Sendable {
        var name: String
        var category: String
        var recipient: String
        var recipientFormat: String
        var concurrency: Int
        var maxInFlightPerHost: Int?
        var rateLimit: String?
        var timeoutMs: Int64
        var retryPolicy: String
        var maxAttempts: Int
        var providers: [String]
        /// `providers` again, with each one's circuit.
        var providerDetails: [Provider]
        var breaker: Breaker?

        enum CodingKeys: String, CodingKey {
            case name, category, recipient, recipientFormat = "recipient_format", concurrency,
                maxInFlightPerHost = "max_in_flight_per_host", rateLimit = "rate_limit", timeoutMs = "timeout_ms",
                retryPolicy = "retry_policy", maxAttempts = "max_attempts", providers, providerDetails = "provider_details",
                breaker
        }
    }

    struct Provider: Encodable, Sendable {
        var name: String
        /// nil: the breaker is off, or the state could not be read.
        var circuit: Circuit?
    }

    struct Circuit: Encodable, Sendable {
        var state: String
        var replicasOpen: Int
        var replicasReporting: Int
        var changedAt: String?

        enum CodingKeys: String, CodingKey {
            case state, replicasOpen = "replicas_open", replicasReporting = "replicas_reporting", changedAt = "changed_at"
        }
    }

    /// The channel's `breaker:` settings.
    struct Breaker: Encodable, Sendable {
        var failureRate: Double
        var windowMs: Int64
        var minRequests: Int
        var openForMs: Int64
        var probes: Int

        enum CodingKeys: String, CodingKey {
            case failureRate = "failure_rate", windowMs = "window_ms", minRequests = "min_requests", openForMs = "open_for_ms", probes
        }
    }

    var configVersion: String
    var channels: [Channel]

    enum CodingKeys: String, CodingKey {
        case configVersion = "config_version", channels
    }

    init(_ snapshot: ConfigSnapshot, circuits: [String: [String: CircuitSummary]]? = nil) {
        configVersion = snapshot.version
        channels = snapshot.registry.names.compactMap { snapshot.registry[$0] }.map { channel in
            let names = snapshot.providers(for: channel.name).map(\.name)
            return Channel(
                name: channel.name, category: channel.category.rawValue, recipient: channel.recipient.name,
                recipientFormat: channel.recipient.format.rawValue, concurrency: channel.concurrency,
                maxInFlightPerHost: channel.maxInFlightPerHost,
                rateLimit: channel.rateLimit.map { "\($0.count)/\($0.per.timeInterval)s" },
                timeoutMs: channel.timeout.milliseconds, retryPolicy: channel.retry.name, maxAttempts: channel.retry.maxAttempts,
                providers: names,
                providerDetails: names.map { name in
                    // No row from any replica seen lately: no replica has seen this circuit leave closed.
                    let summary = circuits.map { $0[channel.name]?[name] ?? CircuitSummary(state: "closed", replicasOpen: 0, replicasReporting: 0) }
                    return Provider(name: name, circuit: channel.breaker == nil ? nil : summary.map {
                        Circuit(state: $0.state, replicasOpen: $0.replicasOpen, replicasReporting: $0.replicasReporting,
                                changedAt: $0.changedAt.map(Timestamp.string))
                    })
                },
                breaker: channel.breaker.map {
                    Breaker(failureRate: $0.failureRate, windowMs: $0.window.milliseconds, minRequests: $0.minRequests,
                            openForMs: $0.openFor.milliseconds, probes: $0.probes)
                })
        }
    }
}

struct TemplatesResponse: Encodable, Sendable {
    struct Template: Encodable, Sendable {
        var id: String
        var defaultLocale: String
        var locales: [String]
        var categories: [String]

        enum CodingKeys: String, CodingKey {
            case id, defaultLocale = "default_locale", locales, categories
        }
    }

    var configVersion: String
    var templates: [Template]

    enum CodingKeys: String, CodingKey {
        case configVersion = "config_version", templates
    }

    init(_ snapshot: ConfigSnapshot) {
        configVersion = snapshot.version
        templates = snapshot.templates.keys.sorted().compactMap { snapshot.templates[$0] }.map { template in
            Template(
                id: template.id, defaultLocale: template.defaultLocale, locales: template.locales.keys.sorted(),
                categories: Set(template.locales.values.flatMap(\.keys)).map(\.rawValue).sorted())
        }
    }
}

struct RenderResponse: Encodable, Sendable {
    var template: String
    /// The locale variant used.
    var locale: String
    /// Per channel category.
    var rendered: [String: MessageContent]
    /// Values the template reads that the preview's data does not give, per category (a send would be refused).
    var missing: [String: [String]]
}
