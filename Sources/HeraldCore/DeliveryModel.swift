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
    /// Files for e-mail channels (MIME parts); other channels send the message without them.
    public var attachments: [Attachment]?

    public init(
        subject: String? = nil, text: String? = nil, html: String? = nil, title: String? = nil, body: String? = nil,
        imageURL: String? = nil, attachments: [Attachment]? = nil
    ) {
        self.attachments = attachments
        self.subject = subject
        self.text = text
        self.html = html
        self.title = title
        self.body = body
        self.imageURL = imageURL
    }

    enum CodingKeys: String, CodingKey {
        case subject, text, html, title, body, imageURL = "image_url", attachments
    }

    /// Reads what `json` writes (the stored job's `message`). Keep the two in step with the stored
    /// properties: the job travels in this form.
    public init(json: JSONValue) throws(JobDecodingError) {
        guard case .object(let object) = json else { throw JobDecodingError(field: "message", expected: "an object") }
        func string(_ key: String) throws(JobDecodingError) -> String? {
            switch object[key] {
            case nil, .null?: return nil
            case .string(let value)?: return value
            default: throw JobDecodingError(field: "message.\(key)", expected: "a string")
            }
        }
        var attachments: [Attachment]?
        switch object["attachments"] {
        case nil, .null?: break
        case .array(let items)?: attachments = try items.map { item throws(JobDecodingError) in try Attachment(json: item) }
        default: throw JobDecodingError(field: "message.attachments", expected: "an array")
        }
        self.init(
            subject: try string("subject"), text: try string("text"), html: try string("html"), title: try string("title"),
            body: try string("body"), imageURL: try string("image_url"), attachments: attachments)
    }

    /// The message as template context (`message.*`), and as the stored job carries it.
    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        for (key, value) in [("subject", subject), ("text", text), ("html", html), ("title", title), ("body", body), ("image_url", imageURL)] {
            if let value { object[key] = .string(value) }
        }
        if let attachments { object["attachments"] = .array(attachments.map(\.json)) }
        return .object(object)
    }
}

/// A file sent with an e-mail: its name, media type and bytes (base64, as the request gave them).
public struct Attachment: Sendable, Hashable, Codable {
    public var filename: String
    public var contentType: String
    /// RFC 4648 base64 of the bytes, without line breaks; empty for a file still to be fetched from `url`.
    public var content: String
    /// Where the worker fetches the file at send (through the SSRF guard); nil: `content` holds it.
    public var url: String?

    public init(filename: String, contentType: String, content: String, url: String? = nil) {
        self.filename = filename
        self.contentType = contentType
        self.content = content
        self.url = url
    }

    enum CodingKeys: String, CodingKey {
        case filename, contentType = "content_type", content, url
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["filename": .string(filename), "content_type": .string(contentType)]
        if let url { object["url"] = .string(url) } else { object["content"] = .string(content) }
        return .object(object)
    }

    public init(json: JSONValue) throws(JobDecodingError) {
        guard case .string(let filename)? = json["filename"], case .string(let contentType)? = json["content_type"] else {
            throw JobDecodingError(field: "message.attachments", expected: "objects with filename, content_type and content or url")
        }
        switch (json["content"], json["url"]) {
        case (.string(let content)?, nil): self.init(filename: filename, contentType: contentType, content: content)
        case (nil, .string(let url)?): self.init(filename: filename, contentType: contentType, content: "", url: url)
        default: throw JobDecodingError(field: "message.attachments", expected: "objects with content or url")
        }
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

    /// The job as it travels and is stored, written by the one JSON writer. Not Foundation's encoder:
    /// the worker reads a job per message and the gateway writes one per delivery, and Foundation's
    /// Codable JSON was 12 % of a worker's CPU. Dates are milliseconds since 1970 and ids strings, as
    /// the Codable form (which older stored jobs have) writes them, so either form reads back.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "delivery_id": .string(deliveryID.lowercasedString), "notification_id": .string(notificationID.lowercasedString),
            "channel": .string(channel), "attempt": .integer(Int64(attempt)), "to": .object(to), "message": message.json,
            "data": data, "metadata": metadata, "accepted_at": Self.milliseconds(acceptedAt), "config_version": .string(configVersion),
            "tenant": .string(tenant),
        ]
        if !fallbackIDs.isEmpty { object["fallback_ids"] = .array(fallbackIDs.map { .string($0.lowercasedString) }) }
        if let expiresAt { object["expires_at"] = Self.milliseconds(expiresAt) }
        if let locale { object["locale"] = .string(locale) }
        if let traceparent { object["traceparent"] = .string(traceparent) }
        return .object(object)
    }

    public init(json: JSONValue) throws(JobDecodingError) {
        guard case .object(let object) = json else { throw JobDecodingError(field: "", expected: "an object") }
        func required(_ key: String) throws(JobDecodingError) -> JSONValue {
            guard let value = object[key], value != .null else { throw JobDecodingError(field: key, expected: "present") }
            return value
        }
        func string(_ key: String) throws(JobDecodingError) -> String? {
            switch object[key] {
            case nil, .null?: return nil
            case .string(let value)?: return value
            default: throw JobDecodingError(field: key, expected: "a string")
            }
        }
        func uuid(_ value: JSONValue, _ key: String) throws(JobDecodingError) -> UUID {
            guard case .string(let text) = value, let id = UUID(uuidString: text) else { throw JobDecodingError(field: key, expected: "a UUID") }
            return id
        }
        func date(_ value: JSONValue, _ key: String) throws(JobDecodingError) -> Date {
            switch value {
            case .integer(let milliseconds): return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            case .double(let milliseconds): return Date(timeIntervalSince1970: milliseconds / 1000)
            default: throw JobDecodingError(field: key, expected: "milliseconds since 1970")
            }
        }
        guard case .integer(let attempt) = try required("attempt"), let attempt = Int(exactly: attempt) else {
            throw JobDecodingError(field: "attempt", expected: "an integer")
        }
        guard case .object(let to) = try required("to") else { throw JobDecodingError(field: "to", expected: "an object") }
        guard let channel = try string("channel") else { throw JobDecodingError(field: "channel", expected: "a string") }
        var expiresAt: Date?
        if let value = object["expires_at"], value != .null { expiresAt = try date(value, "expires_at") }
        var fallbackIDs: [UUID] = []
        switch object["fallback_ids"] {
        case nil, .null?: break
        case .array(let ids)?: for id in ids { fallbackIDs.append(try uuid(id, "fallback_ids")) }
        default: throw JobDecodingError(field: "fallback_ids", expected: "an array")
        }
        self.init(
            deliveryID: try uuid(try required("delivery_id"), "delivery_id"),
            notificationID: try uuid(try required("notification_id"), "notification_id"), channel: channel, attempt: attempt,
            to: to, message: try MessageContent(json: try required("message")), data: object["data"] ?? .object([:]),
            metadata: try required("metadata"), acceptedAt: try date(try required("accepted_at"), "accepted_at"),
            configVersion: try string("config_version") ?? "", fallbackIDs: fallbackIDs,
            expiresAt: expiresAt,
            tenant: try string("tenant") ?? Tenant.default, locale: try string("locale"))
        traceparent = try string("traceparent")
    }

    static func milliseconds(_ date: Date) -> JSONValue { .double(date.timeIntervalSince1970 * 1000) }

    public func encoded() throws -> [UInt8] { Array(JSONWriter.string(json).utf8) }

    public static func decode(_ bytes: [UInt8]) throws -> DeliveryJob {
        try DeliveryJob(json: try JSONParser.parse(bytes))
    }
}

/// A stored or queued job that is not what `DeliveryJob.json` writes.
public struct JobDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var expected: String
    public var description: String { "the job's \(field.isEmpty ? "document" : "'\(field)'") is not \(expected)" }
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
