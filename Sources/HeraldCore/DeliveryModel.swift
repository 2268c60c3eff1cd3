import Foundation

/// Where a delivery (one notification on one channel) stands. Terminal states never change again.
/// This enum is the one source of truth for statuses: SQL binds these raw values (and the sets below)
/// as parameters instead of repeating literals.
public enum DeliveryStatus: String, Sendable, Codable, CaseIterable {
    /// A fallback delivery waiting for an earlier channel of its notification to fail for good.
    case pending
    /// Stored with a future `send_at`; the outbox publishes it at that time.
    case scheduled
    /// Stored and handed to the outbox; no attempt yet.
    case queued
    /// A worker has claimed it and is attempting it now (under a lease).
    case sending
    /// An attempt failed transiently; the next one waits in the outbox until its time (`not_before`).
    case retrying
    /// The provider accepted it.
    case sent
    /// The provider reported it delivered to the recipient (a delivery receipt).
    case delivered
    /// The provider accepted it but reported that it could not be delivered (a delivery receipt).
    case undelivered
    /// Failed for good: permanent error, or retries exhausted.
    case failed
    case cancelled
    case expired

    public var isTerminal: Bool {
        switch self {
        case .sent, .delivered, .undelivered, .failed, .cancelled, .expired: true
        case .pending, .scheduled, .queued, .sending, .retrying: false
        }
    }

    public static let terminal: [DeliveryStatus] = allCases.filter(\.isTerminal)
    /// What a worker may claim for an attempt.
    public static let claimable: [DeliveryStatus] = [.scheduled, .queued, .retrying]
    /// What a cancel request stops. A delivery in `sending` is in flight and finishes.
    public static let cancellable: [DeliveryStatus] = [.pending, .scheduled, .queued, .retrying]
    /// What a dead-letter replay takes.
    public static let replayable: [DeliveryStatus] = [.failed, .expired]

    /// What a delivery receipt moves a delivery from: the provider was handed the message (or may
    /// have been), and no receipt has settled it yet. Terminal statuses otherwise never change: a
    /// receipt is the provider's word on what happened after `sent`.
    public static let receiptable: [DeliveryStatus] = [.sending, .retrying, .sent]

    /// What a receipt with `outcome` does to a delivery in this status (nil: recorded, status unchanged).
    ///
    /// - `sending`, `retrying`, `sent` → the outcome's status. A receipt can overtake the worker's own
    ///   record of the attempt (Kannel reports within milliseconds); the worker's settlement then finds
    ///   a terminal status and leaves it, and a pending retry is skipped when claimed.
    /// - `failed`, `expired` + delivered → `delivered`: the provider got it after all (an attempt that
    ///   timed out was not resent under `no-duplicates`, or expired waiting for the answer).
    /// - `delivered`, `undelivered`: the first final receipt stands; later and duplicate ones are recorded only.
    /// - anything else (never attempted, cancelled, replayed and queued again): recorded only.
    public func afterReceipt(_ outcome: ReceiptOutcome) -> DeliveryStatus? {
        let target = outcome.status
        if Self.receiptable.contains(self) { return target }
        if (self == .failed || self == .expired) && outcome == .delivered { return target }
        return nil
    }

    /// Raw values, for binding as a SQL `text[]` parameter.
    public static func names(_ statuses: [DeliveryStatus]) -> [String] { statuses.map(\.rawValue) }
}

/// The classified result of one attempt.
public enum AttemptOutcome: String, Sendable, Codable {
    /// The provider accepted the message.
    case success
    /// Failed in a way that may succeed later (408, 429, 5xx, connection refused, DNS).
    case transientFailure = "transient_failure"
    /// Failed in a way retrying cannot fix (most 4xx, blocked address, invalid request).
    case permanentFailure = "permanent_failure"
    /// The request may have reached the provider but no answer came (timeout after sending):
    /// a resend may duplicate, so the retry policy decides.
    case ambiguous
    /// The provider asked to slow down (429): nothing was sent, the channel waits and sends slower,
    /// and the attempt is made again without being spent (up to a bound; see `DeliveryEngine.settle`).
    case throttled
}

/// One recorded attempt, as stored in the append-only attempt log.
public struct AttemptRecord: Sendable, Hashable, Codable {
    public var deliveryID: UUID
    public var notificationID: UUID
    public var number: Int
    public var startedAt: Date
    public var finishedAt: Date
    public var outcome: AttemptOutcome
    public var httpStatus: Int?
    public var error: String?
    public var providerMessageID: String?
    /// The delivery's status after this attempt.
    public var resultingStatus: DeliveryStatus
    public var worker: String
    /// The provider tried.
    public var provider: String
    public var channel: String
    public var tenant: String

    public init(
        deliveryID: UUID, notificationID: UUID, number: Int, startedAt: Date, finishedAt: Date,
        outcome: AttemptOutcome, httpStatus: Int?, error: String?, providerMessageID: String? = nil,
        resultingStatus: DeliveryStatus, worker: String, provider: String = "", channel: String = "",
        tenant: String = Tenant.default
    ) {
        self.provider = provider
        self.channel = channel
        self.tenant = tenant
        self.deliveryID = deliveryID
        self.notificationID = notificationID
        self.number = number
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.httpStatus = httpStatus
        self.error = error
        self.providerMessageID = providerMessageID
        self.resultingStatus = resultingStatus
        self.worker = worker
    }

    public var duration: Duration {
        .milliseconds(Int64((finishedAt.timeIntervalSince(startedAt) * 1000).rounded()))
    }
}

/// The content of a message: what a client sends, or what a template rendered for one channel.
public struct MessageContent: Sendable, Hashable, Codable {
    public var subject: String?
    public var text: String?
    public var html: String?
    /// Push notifications.
    public var title: String?
    public var body: String?
    public var imageURL: String?

    public init(
        subject: String? = nil, text: String? = nil, html: String? = nil, title: String? = nil, body: String? = nil,
        imageURL: String? = nil
    ) {
        self.subject = subject
        self.text = text
        self.html = html
        self.title = title
        self.body = body
        self.imageURL = imageURL
    }

    enum CodingKeys: String, CodingKey {
        case subject, text, html, title, body, imageURL = "image_url"
    }

    /// The message as template context (`message.*`).
    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        for (key, value) in [("subject", subject), ("text", text), ("html", html), ("title", title), ("body", body), ("image_url", imageURL)] {
            if let value { object[key] = .string(value) }
        }
        return .object(object)
    }
}

/// What travels on a channel queue: everything a worker needs to attempt the delivery without
/// reading the database, so the hot path costs one batched write per outcome and nothing else.
public struct DeliveryJob: Sendable, Hashable, Codable {
    public var deliveryID: UUID
    public var notificationID: UUID
    public var channel: String
    public var tenant: String
    /// The number this job's attempt will carry (1 for the first).
    public var attempt: Int
    public var to: [String: JSONValue]
    public var message: MessageContent
    /// The request's template data, for provider templates.
    public var data: JSONValue
    public var metadata: JSONValue
    public var acceptedAt: Date
    /// The configuration version the notification was routed with.
    public var configVersion: String
    /// Fallback routing: the deliveries (of later channels) to start, in order, if this one fails for good.
    /// Each of them is stored with its own job, whose `fallbackIDs` are the ones after it.
    public var fallbackIDs: [UUID]
    /// Not attempted after this instant: the delivery ends `expired`.
    public var expiresAt: Date?
    /// The template locale `message` was rendered in; nil for an inline message.
    public var locale: String?
    /// The W3C `traceparent` of the request that created it: the worker logs its trace id and sends
    /// it on to the provider.
    public var traceparent: String?

    public init(
        deliveryID: UUID, notificationID: UUID, channel: String, attempt: Int,
        to: [String: JSONValue], message: MessageContent, data: JSONValue = .object([:]), metadata: JSONValue,
        acceptedAt: Date, configVersion: String = "", fallbackIDs: [UUID] = [], expiresAt: Date? = nil,
        tenant: String = Tenant.default, locale: String? = nil
    ) {
        self.tenant = tenant
        self.locale = locale
        self.data = data
        self.configVersion = configVersion
        self.fallbackIDs = fallbackIDs
        self.expiresAt = expiresAt
        self.deliveryID = deliveryID
        self.notificationID = notificationID
        self.channel = channel
        self.attempt = attempt
        self.to = to
        self.message = message
        self.metadata = metadata
        self.acceptedAt = acceptedAt
    }

    enum CodingKeys: String, CodingKey {
        case deliveryID = "delivery_id", notificationID = "notification_id", channel, attempt, to, message, data,
            metadata, acceptedAt = "accepted_at", configVersion = "config_version", fallbackIDs = "fallback_ids",
            expiresAt = "expires_at", tenant, locale, traceparent
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        deliveryID = try container.decode(UUID.self, forKey: .deliveryID)
        notificationID = try container.decode(UUID.self, forKey: .notificationID)
        channel = try container.decode(String.self, forKey: .channel)
        attempt = try container.decode(Int.self, forKey: .attempt)
        to = try container.decode([String: JSONValue].self, forKey: .to)
        message = try container.decode(MessageContent.self, forKey: .message)
        data = try container.decodeIfPresent(JSONValue.self, forKey: .data) ?? .object([:])
        metadata = try container.decode(JSONValue.self, forKey: .metadata)
        acceptedAt = try container.decode(Date.self, forKey: .acceptedAt)
        configVersion = try container.decodeIfPresent(String.self, forKey: .configVersion) ?? ""
        fallbackIDs = try container.decodeIfPresent([UUID].self, forKey: .fallbackIDs) ?? []
        expiresAt = try container.decodeIfPresent(Date.self, forKey: .expiresAt)
        tenant = try container.decodeIfPresent(String.self, forKey: .tenant) ?? Tenant.default
        locale = try container.decodeIfPresent(String.self, forKey: .locale)
        traceparent = try container.decodeIfPresent(String.self, forKey: .traceparent)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(deliveryID, forKey: .deliveryID)
        try container.encode(notificationID, forKey: .notificationID)
        try container.encode(channel, forKey: .channel)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(to, forKey: .to)
        try container.encode(message, forKey: .message)
        try container.encode(data, forKey: .data)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(acceptedAt, forKey: .acceptedAt)
        try container.encode(configVersion, forKey: .configVersion)
        if !fallbackIDs.isEmpty { try container.encode(fallbackIDs, forKey: .fallbackIDs) }
        try container.encodeIfPresent(expiresAt, forKey: .expiresAt)
        try container.encode(tenant, forKey: .tenant)
        try container.encodeIfPresent(locale, forKey: .locale)
        try container.encodeIfPresent(traceparent, forKey: .traceparent)
    }

    /// Everything a template may read (`to`, `message`, `data`, `metadata`, ids).
    public var templateContext: [String: JSONValue] {
        [
            "to": .object(to), "message": message.json, "data": data, "metadata": metadata,
            "notification_id": .string(notificationID.lowercasedString), "delivery_id": .string(deliveryID.lowercasedString),
            "attempt": .integer(Int64(attempt)),
        ]
    }

    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    public func encoded() throws -> [UInt8] { Array(try Self.encoder.encode(self)) }

    public static func decode(_ bytes: [UInt8]) throws -> DeliveryJob {
        try decoder.decode(DeliveryJob.self, from: Data(bytes))
    }
}

/// What a provider's status callback means for a delivery.
public enum ReceiptOutcome: String, Sendable, Hashable, CaseIterable {
    case delivered, undelivered, failed

    /// The delivery status a receipt with this outcome moves a delivery to.
    public var status: DeliveryStatus {
        switch self {
        case .delivered: .delivered
        case .undelivered: .undelivered
        case .failed: .failed
        }
    }
}
