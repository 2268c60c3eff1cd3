import Foundation

/// A validated request to send a notification.
public struct NotificationRequest: Sendable, Hashable {
    /// The channels the request names; empty when routing rules are to choose.
    public var channels: [String]
    public var to: [String: JSONValue]
    /// The content given inline; empty when a template renders it.
    public var message: MessageContent
    public var template: String?
    /// Values for the template.
    public var data: JSONValue
    public var metadata: JSONValue
    public var idempotencyKey: String?
    /// Deliver at this time, not before (`send_at`); nil: now.
    public var sendAt: Date?
    /// Never attempt after this time (`expires_at`): the delivery ends `expired`.
    public var expiresAt: Date?
    /// The request as the client sent it, kept as the notification document.
    public var document: JSONValue

    public init(
        channels: [String], to: [String: JSONValue], message: MessageContent, template: String? = nil,
        data: JSONValue = .object([:]), metadata: JSONValue, idempotencyKey: String?, sendAt: Date? = nil,
        expiresAt: Date? = nil, document: JSONValue
    ) {
        self.sendAt = sendAt
        self.expiresAt = expiresAt
        self.channels = channels
        self.to = to
        self.message = message
        self.template = template
        self.data = data
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
        self.document = document
    }
}

/// One thing wrong with a request, located by a dotted path into the JSON body.
public struct FieldError: Sendable, Hashable, Codable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

public struct RequestValidationError: Error, Sendable, Hashable {
    public var errors: [FieldError]
    public init(errors: [FieldError]) { self.errors = errors }
}

/// Checks a request body against the channels in force. Collects every problem rather than
/// stopping at the first, so a client fixes its request in one round.
public struct RequestValidator: Sendable {
    public var registry: ChannelRegistry
    /// The template ids a request may name.
    public var templates: Set<String>
    /// Whether routing rules can choose channels when a request names none.
    public var hasRoutingRules: Bool
    public static let maximumTextLength = 100_000
    static let topLevelKeys: Set<String> = [
        "channel", "channels", "to", "message", "template", "data", "metadata", "idempotency_key", "send_at",
        "expires_at",
    ]
    /// How far ahead `send_at` may be. Default 366 days.
    public static let maximumSchedule: TimeInterval = 366 * 86_400

    /// Accept URL recipients on loopback and private addresses (local development and tests only).
    public var allowPrivateTargets = false
    /// Whether an IP literal is a restricted (non-public) address: the SSRF guard's own rule, given by
    /// the gateway so that accept refuses what the worker's guard would refuse at connect; nil when
    /// the text is not an IP literal.
    public var isRestrictedAddress: @Sendable (String) -> Bool? = { _ in nil }

    public init(registry: ChannelRegistry, templates: Set<String> = [], hasRoutingRules: Bool = false) {
        self.registry = registry
        self.templates = templates
        self.hasRoutingRules = hasRoutingRules
    }

    public func validate(_ body: JSONValue, now: Date = Date()) -> Result<NotificationRequest, RequestValidationError> {
        guard case .object(let root) = body else {
            return .failure(.init(errors: [FieldError(field: "", message: "the body must be a JSON object, not \(body.typeName)")]))
        }
        // PostgreSQL's jsonb (and most receivers) can't hold U+0000: refuse it here, naming where it is,
        // rather than letting one such string fail a whole group commit later.
        var errors = Self.nulCharacterErrors(in: body)

        for key in root.keys.sorted() where !Self.topLevelKeys.contains(key) {
            errors.append(FieldError(field: key, message: "unknown field; expected one of \(Self.topLevelKeys.sorted().joined(separator: ", "))"))
        }

        let channels = validateChannels(root, errors: &errors)

        var to: [String: JSONValue] = [:]
        switch root["to"] {
        case nil:
            errors.append(FieldError(field: "to", message: "is required: an object with the recipient's addresses"))
        case .object(let members)?:
            to = members
            errors += recipientErrors(channels: channels, to: members)
        case let other?:
            errors.append(FieldError(field: "to", message: "must be an object, not \(other.typeName)"))
        }

        var template: String?
        var message = MessageContent()
        switch (root["template"], root["message"]) {
        case (nil, _):
            message = validateMessage(root["message"], channels: channels, errors: &errors)
        case (.string(let id)?, nil):
            if templates.contains(id) {
                template = id
            } else {
                let known = templates.isEmpty ? "none is configured" : "known: \(templates.sorted().joined(separator: ", "))"
                errors.append(FieldError(field: "template", message: "unknown template '\(id)'; \(known)"))
            }
        case (.string?, _?):
            errors.append(FieldError(field: "message", message: "give either 'template' or 'message', not both"))
        case (let other?, _):
            errors.append(FieldError(field: "template", message: "must be a string, not \(other.typeName)"))
        }
        let data = root["data"] ?? .object([:])
        if case .object = data {} else {
            errors.append(FieldError(field: "data", message: "must be an object, not \(data.typeName)"))
        }
        if case .string(let locale)? = to["locale"], locale.count > 35 || locale.contains(where: { !($0.isLetter || $0 == "-" || $0 == "_") }) {
            errors.append(FieldError(field: "to.locale", message: "must be a language tag such as en or ru-RU"))
        }

        let metadata = root["metadata"] ?? .object([:])
        if case .object = metadata {} else {
            errors.append(FieldError(field: "metadata", message: "must be an object, not \(metadata.typeName)"))
        }

        var idempotencyKey: String?
        switch root["idempotency_key"] {
        case nil, .null?: break
        case .string(let key)? where !key.isEmpty && key.count <= 255: idempotencyKey = key
        case .string?: errors.append(FieldError(field: "idempotency_key", message: "must be 1 to 255 characters"))
        case let other?: errors.append(FieldError(field: "idempotency_key", message: "must be a string, not \(other.typeName)"))
        }

        let sendAt = Self.instant(root["send_at"], field: "send_at", errors: &errors)
        let expiresAt = Self.instant(root["expires_at"], field: "expires_at", errors: &errors)
        if let sendAt, sendAt.timeIntervalSince(now) > Self.maximumSchedule {
            errors.append(FieldError(field: "send_at", message: "must be at most 366 days ahead"))
        }
        if let expiresAt {
            if expiresAt <= now {
                errors.append(FieldError(field: "expires_at", message: "is in the past: nothing could be sent"))
            } else if let sendAt, expiresAt <= sendAt {
                errors.append(FieldError(field: "expires_at", message: "must be later than send_at"))
            }
        }

        guard errors.isEmpty else { return .failure(.init(errors: errors)) }
        return .success(NotificationRequest(
            channels: channels, to: to, message: message, template: template, data: data, metadata: metadata,
            idempotencyKey: idempotencyKey, sendAt: sendAt, expiresAt: expiresAt, document: body))
    }

    /// An RFC 3339 date-time (`2026-12-01T09:30:00Z`, fractional seconds and offsets allowed), or nil.
    static func instant(_ value: JSONValue?, field: String, errors: inout [FieldError]) -> Date? {
        switch value {
        case nil, .null?:
            return nil
        case .string(let text)?:
            if let date = Timestamp.parse(text) { return date }
            errors.append(FieldError(field: field, message: "must be an RFC 3339 date-time such as 2026-12-01T09:30:00Z"))
            return nil
        case let other?:
            errors.append(FieldError(field: field, message: "must be an RFC 3339 date-time string, not \(other.typeName)"))
            return nil
        }
    }

    /// Every place in `value` where a key or string contains U+0000, as field errors.
    public static func nulCharacterErrors(in value: JSONValue, path: String = "") -> [FieldError] {
        func join(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        switch value {
        case .string(let string) where string.unicodeScalars.contains("\u{0}"):
            return [FieldError(field: path, message: "contains the NUL character (U+0000), which is not allowed")]
        case .object(let members):
            return members.keys.sorted().flatMap { key -> [FieldError] in
                if key.unicodeScalars.contains("\u{0}") {
                    return [FieldError(field: join(key.replacingOccurrences(of: "\u{0}", with: "\\u0000")),
                        message: "the key contains the NUL character (U+0000), which is not allowed")]
                }
                return nulCharacterErrors(in: members[key]!, path: join(key))
            }
        case .array(let elements):
            return elements.enumerated().flatMap { nulCharacterErrors(in: $1, path: join(String($0))) }
        default:
            return []
        }
    }

    /// What is wrong with `to` for `channels`: each channel's recipient field must be there and well-formed.
    public func recipientErrors(channels: [String], to members: [String: JSONValue]) -> [FieldError] {
        var errors: [FieldError] = []
        for channelName in channels {
            guard let channel = registry[channelName] else { continue }
            let field = channel.recipient.name
            switch members[field] {
            case nil:
                errors.append(FieldError(field: "to.\(field)", message: "is required by channel '\(channelName)'"))
            case let value? where channel.recipient.format == .webPushSubscription:
                errors += subscriptionErrors(value, field: "to.\(field)")
            case .string(let value)?:
                if let problem = channel.recipient.problem(with: value) ?? targetProblem(channel.recipient, value) {
                    errors.append(FieldError(field: "to.\(field)", message: problem))
                }
            case let other?:
                errors.append(FieldError(field: "to.\(field)", message: "must be a string, not \(other.typeName)"))
            }
        }
        return errors
    }

    /// What is wrong with a Web Push subscription, member by member; its endpoint is held to the same
    /// address rule as URL recipients.
    func subscriptionErrors(_ value: JSONValue, field: String) -> [FieldError] {
        switch WebPushSubscription.parse(value, allowHTTP: allowPrivateTargets) {
        case .failure(let invalid):
            return invalid.problems.map { FieldError(field: $0.member.isEmpty ? field : "\(field).\($0.member)", message: $0.message) }
        case .success(let subscription):
            return targetProblem(RecipientField(name: "endpoint", format: .url), subscription.endpoint).map {
                [FieldError(field: "\(field).endpoint", message: $0)]
            } ?? []
        }
    }

    /// A URL recipient that names a host the SSRF guard would refuse (loopback, private, link-local,
    /// metadata addresses, `localhost`), refused at accept rather than failing later.
    func targetProblem(_ recipient: RecipientField, _ value: String) -> String? {
        guard recipient.format == .url, !allowPrivateTargets, let host = URLComponents(string: value)?.host else { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let lowered = bare.lowercased()
        if lowered == "localhost" || lowered.hasSuffix(".localhost") || isRestrictedAddress(bare) == true {
            return "must name a public host: \(host) is a loopback, private or otherwise non-public address"
        }
        return nil
    }

    private func validateChannels(_ root: [String: JSONValue], errors: inout [FieldError]) -> [String] {
        var named: [(field: String, name: String)] = []
        switch (root["channel"], root["channels"]) {
        case (nil, nil):
            if !hasRoutingRules {
                errors.append(FieldError(
                    field: "channel",
                    message: "is required (no routing rules are configured): one of \(registry.names.joined(separator: ", "))"))
            }
        case (_?, _?):
            errors.append(FieldError(field: "channels", message: "give either 'channel' or 'channels', not both"))
        case (let single?, nil):
            if case .string(let name) = single {
                named = [("channel", name)]
            } else {
                errors.append(FieldError(field: "channel", message: "must be a string, not \(single.typeName)"))
            }
        case (nil, let list?):
            guard case .array(let elements) = list, !elements.isEmpty else {
                errors.append(FieldError(field: "channels", message: "must be a non-empty array of channel names"))
                break
            }
            for (index, element) in elements.enumerated() {
                if case .string(let name) = element {
                    named.append(("channels.\(index)", name))
                } else {
                    errors.append(FieldError(field: "channels.\(index)", message: "must be a string, not \(element.typeName)"))
                }
            }
        }
        var channels: [String] = []
        for (field, name) in named {
            if registry[name] == nil {
                errors.append(FieldError(field: field, message: "unknown channel '\(name)'; known channels: \(registry.names.joined(separator: ", "))"))
            } else if channels.contains(name) {
                errors.append(FieldError(field: field, message: "channel '\(name)' is named twice"))
            } else {
                channels.append(name)
            }
        }
        return channels
    }

    private func validateMessage(_ value: JSONValue?, channels: [String], errors: inout [FieldError]) -> MessageContent {
        guard let value else {
            errors.append(FieldError(field: "message", message: "is required: an object with 'text', 'subject' or 'html'"))
            return MessageContent()
        }
        guard case .object(let members) = value else {
            errors.append(FieldError(field: "message", message: "must be an object, not \(value.typeName)"))
            return MessageContent()
        }
        var content = MessageContent()
        let fields: [(String, WritableKeyPath<MessageContent, String?>)] = [("subject", \.subject), ("text", \.text), ("html", \.html)]
        for key in members.keys.sorted() where !fields.contains(where: { $0.0 == key }) && !["image_url", "attachments"].contains(key) {
            errors.append(FieldError(field: "message.\(key)", message: "unknown field; expected subject, text, html, image_url or attachments"))
        }
        for (key, path) in fields {
            switch members[key] {
            case nil, .null?: break
            case .string(let string)?:
                if string.count > Self.maximumTextLength {
                    errors.append(FieldError(field: "message.\(key)", message: "is longer than \(Self.maximumTextLength) characters"))
                } else {
                    content[keyPath: path] = string
                }
            case let other?:
                errors.append(FieldError(field: "message.\(key)", message: "must be a string, not \(other.typeName)"))
            }
        }
        switch members["image_url"] {
        case nil, .null?: break
        case .string(let url)?:
            let asURL = RecipientField(name: "image_url", format: .url)
            if let problem = asURL.problem(with: url) ?? targetProblem(asURL, url) {
                errors.append(FieldError(field: "message.image_url", message: problem))
            } else {
                content.imageURL = url
            }
        case let other?:
            errors.append(FieldError(field: "message.image_url", message: "must be a string, not \(other.typeName)"))
        }
        if let attachments = members["attachments"], attachments != .null {
            content.attachments = validateAttachments(attachments, channels: channels, errors: &errors)
        }
        if content.text == nil && content.html == nil && content.subject == nil && !errors.contains(where: { $0.field.hasPrefix("message") }) {
            errors.append(FieldError(field: "message.text", message: "is required when neither subject nor html is given (or name a 'template')"))
        }
        return content
    }

    /// At most this many attachments per message, and this many bytes in all (decoded).
    public static let maximumAttachments = 10
    public static let maximumAttachmentBytes = 2 << 20

    /// E-mail attachments: each `{filename, content_type, content}` with base64 content, or with `url`
    /// instead of `content` (fetched by the worker at send; its size is checked then). Only e-mail
    /// channels whose providers are SMTP carry them; a request whose named channels include none is refused.
    private func validateAttachments(_ value: JSONValue, channels: [String], errors: inout [FieldError]) -> [Attachment]? {
        guard case .array(let items) = value else {
            errors.append(FieldError(field: "message.attachments", message: "must be an array, not \(value.typeName)"))
            return nil
        }
        if !channels.isEmpty, !channels.contains(where: { registry[$0]?.carriesAttachments == true }) {
            errors.append(FieldError(
                field: "message.attachments",
                message: "only e-mail channels sending through SMTP carry attachments; none of \(channels.joined(separator: ", ")) does"))
        }
        if items.count > Self.maximumAttachments {
            errors.append(FieldError(field: "message.attachments", message: "at most \(Self.maximumAttachments) attachments"))
            return nil
        }
        var attachments: [Attachment] = []
        var totalBytes = 0
        for (index, item) in items.enumerated() {
            let field = "message.attachments.\(index)"
            guard case .object(let members) = item else {
                errors.append(FieldError(field: field, message: "must be an object with filename, content_type and content"))
                continue
            }
            for key in members.keys.sorted() where !["filename", "content_type", "content", "url"].contains(key) {
                errors.append(FieldError(field: "\(field).\(key)", message: "unknown field; expected filename, content_type, content or url"))
            }
            var valid = true
            func string(_ key: String) -> String? {
                guard case .string(let text)? = members[key] else {
                    errors.append(FieldError(field: "\(field).\(key)", message: "is required: a string"))
                    valid = false
                    return nil
                }
                return text
            }
            let filename = string("filename"), contentType = string("content_type")
            // The file itself (base64) or a URL the worker fetches at send: one of the two.
            var content: String?, url: String?
            switch (members["content"], members["url"]) {
            case (_?, _?):
                errors.append(FieldError(field: "\(field)", message: "give content or url, not both"))
                valid = false
            case (nil, nil):
                errors.append(FieldError(field: "\(field).content", message: "is required (base64), unless url is given"))
                valid = false
            case (_?, nil):
                content = string("content")
            case (nil, .string(let text)?):
                let asURL = RecipientField(name: "url", format: .url)
                if let problem = asURL.problem(with: text) ?? targetProblem(asURL, text) {
                    errors.append(FieldError(field: "\(field).url", message: problem))
                    valid = false
                } else {
                    url = text
                }
            case (nil, let other?):
                errors.append(FieldError(field: "\(field).url", message: "must be a string, not \(other.typeName)"))
                valid = false
            }
            if let filename, filename.isEmpty || filename.count > 255 || filename.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" || $0 == "\\" }) {
                errors.append(FieldError(field: "\(field).filename", message: "must be 1 to 255 characters without control characters, '/' or '\\'"))
                valid = false
            }
            if let contentType, !Self.isMediaType(contentType) {
                errors.append(FieldError(field: "\(field).content_type", message: "must be a media type such as application/pdf"))
                valid = false
            }
            if let content {
                if let bytes = Base64.decodedCount(content) {
                    totalBytes += bytes
                } else {
                    errors.append(FieldError(field: "\(field).content", message: "must be base64 (RFC 4648, without line breaks)"))
                    valid = false
                }
            }
            if valid, let filename, let contentType, content != nil || url != nil {
                attachments.append(Attachment(filename: filename, contentType: contentType.lowercased(), content: content ?? "", url: url))
            }
        }
        if totalBytes > Self.maximumAttachmentBytes {
            errors.append(FieldError(field: "message.attachments", message: "are \(totalBytes) bytes in all; at most \(Self.maximumAttachmentBytes)"))
        }
        return attachments
    }

    /// `type/subtype` of RFC 6838 restricted-name characters.
    static func isMediaType(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-")
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.count <= 127 && $0.allSatisfy(allowed.contains) }
    }
}

/// Standard base64 (RFC 4648 §4) checks, without decoding into memory twice.
public enum Base64 {
    /// The decoded length of `text`, or nil when it is not padded standard base64.
    public static func decodedCount(_ text: String) -> Int? {
        let bytes = text.utf8
        guard bytes.count % 4 == 0 else { return nil }
        var padding = 0
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding > 0 { return nil }
            case UInt8(ascii: "="):
                padding += 1
                if padding > 2 || index < bytes.count - 2 { return nil }
            default: return nil
            }
        }
        return bytes.count / 4 * 3 - padding
    }
}
