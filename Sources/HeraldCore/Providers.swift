/// A template's source text, and where it came from (for error messages).
public struct TemplateText: Sendable, Hashable {
    public var source: String
    /// `file:line:column` of the value in the configuration.
    public var location: String

    public init(_ source: String, location: String = "") {
        self.source = source
        self.location = location
    }
}

/// What a channel renders from a template: which part of a template it uses.
public enum ChannelCategory: String, Sendable, Hashable, CaseIterable {
    case email, sms, push, chat, webhook
}

/// One way a channel can deliver, tried in order.
public struct ProviderSpec: Sendable, Hashable {
    public var name: String
    public var transport: Transport
    /// How the provider codes and splits SMS (`sms:`); nil for providers that don't send SMS.
    public var sms: SMSProviderSettings?
    /// How the provider reports delivery (`receipts:`); nil when it doesn't.
    public var receipts: ReceiptSpec?

    public enum Transport: Sendable, Hashable {
        case http(HTTPProviderSpec)
        case smtp(SMTPProviderSpec)
        case webPush(WebPushProviderSpec)
    }

    public init(name: String, transport: Transport, sms: SMSProviderSettings? = nil, receipts: ReceiptSpec? = nil) {
        self.name = name
        self.transport = transport
        self.sms = sms
        self.receipts = receipts
    }
}

/// What an SMS provider says about the messages it sends (`sms:` of a provider).
public struct SMSProviderSettings: Sendable, Hashable {
    /// Parts of a concatenated message it sends at most. Kannel cuts a longer text to its sendsms-user's
    /// `max-messages` and still answers "Accepted": a text over this is refused instead of sent cut.
    public var maxParts: Int
    /// What `{{sms.coding}}` renders for each encoding (Kannel `coding`: 0 and 2; Vonage `type`: text and unicode).
    public var coding: [SMSEncoding: String]

    public init(maxParts: Int, coding: [SMSEncoding: String]) {
        self.maxParts = maxParts
        self.coding = coding
    }

    /// Why `text` can't be sent whole through this provider, or nil when it can.
    public func problem(with segmentation: SMSSegmentation) -> String? {
        guard segmentation.partCount > maxParts else { return nil }
        let unit = segmentation.encoding == .gsm7 ? "septets" : "UTF-16 units"
        return "the text needs \(segmentation.partCount) SMS parts (\(segmentation.encoding.rawValue), \(segmentation.units) \(unit)); "
            + "this provider sends at most \(maxParts)"
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

/// How a provider reports what became of a message (`receipts:` of a provider): how its callbacks
/// to `/v1/receipts/{channel}/{provider}` are verified, where their fields are, what their statuses mean.
public struct ReceiptSpec: Sendable, Hashable {
    public enum Verification: Sendable, Hashable {
        /// The per-delivery token Herald puts in the callback URL (`{{receipts.url}}`) is the proof:
        /// only Herald and the provider it gave the URL to know it (Kannel's `dlr-url`).
        case deliveryToken
        /// `X-Twilio-Signature`: HMAC-SHA1, keyed with the account's auth token, of the full callback URL
        /// followed by every POST parameter's name and value in name order, base64.
        case twilioSignature(authToken: TemplateText)
        /// Standard Webhooks: `webhook-id`, `webhook-timestamp` (within 5 minutes), `webhook-signature`.
        case standardWebhooks(secret: TemplateText)
    }

    public struct Parameter: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var verification: Verification
    /// Added to the callback URL for the provider to fill in (Kannel: `status=%d`).
    public var urlParameters: [Parameter]
    /// Where the provider's status is: a query parameter, a form field, or a dotted path in a JSON body.
    public var statusField: String
    /// Where the provider's message id is (checked against the one recorded, or used to find the delivery).
    public var messageIDField: String?
    /// Where the delivery id is, for providers that echo it in a signed body (a client reference).
    public var deliveryIDField: String?
    /// Where a reason or error code is, kept with the event.
    public var detailField: String?
    /// Provider status → outcome. A status not listed (queued, accepted by the SMSC, …) is recorded
    /// as an event and leaves the delivery's status as it is.
    public var statuses: [String: ReceiptOutcome]

    public init(
        verification: Verification, urlParameters: [Parameter] = [], statusField: String, messageIDField: String? = nil,
        deliveryIDField: String? = nil, detailField: String? = nil, statuses: [String: ReceiptOutcome]
    ) {
        self.verification = verification
        self.urlParameters = urlParameters
        self.statusField = statusField
        self.messageIDField = messageIDField
        self.deliveryIDField = deliveryIDField
        self.detailField = detailField
        self.statuses = statuses
    }
}

/// An HTTP provider: a request described with templates, and how to read the answer.
public struct HTTPProviderSpec: Sendable, Hashable {
    public var method: String
    public var url: TemplateText
    public var headers: [(name: String, value: TemplateText)]
    public var body: Body?
    public var auth: Auth?
    public var response: ResponseRules
    /// PEM file of the CAs trusted for this provider's `https://` URL (a private CA); nil: the default.
    public var caFile: String?

    public init(
        method: String, url: TemplateText, headers: [(name: String, value: TemplateText)], body: Body?, auth: Auth?,
        response: ResponseRules, caFile: String? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.auth = auth
        self.response = response
        self.caFile = caFile
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.method == rhs.method && lhs.url == rhs.url && lhs.headers.map(\.name) == rhs.headers.map(\.name)
            && lhs.headers.map(\.value) == rhs.headers.map(\.value) && lhs.body == rhs.body && lhs.auth == rhs.auth
            && lhs.response == rhs.response && lhs.caFile == rhs.caFile
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(method)
        hasher.combine(url)
        for header in headers {
            hasher.combine(header.name)
            hasher.combine(header.value)
        }
        hasher.combine(body)
        hasher.combine(auth)
        hasher.combine(response)
        hasher.combine(caFile)
    }

    public enum Body: Sendable, Hashable {
        /// A JSON structure whose string leaves are templates; serialised by Herald.
        case json(BodyValue)
        /// Form fields, each value a template; form-urlencoded by Herald.
        case form([FormField])
        /// A text template escaped for `contentType`.
        case text(TemplateText, contentType: String)
    }

    public struct FormField: Sendable, Hashable {
        public var name: String
        public var value: TemplateText
        public init(name: String, value: TemplateText) {
            self.name = name
            self.value = value
        }
    }

    /// A node of a JSON body.
    public indirect enum BodyValue: Sendable, Hashable {
        case template(TemplateText)
        /// A JSON value copied from the template context (`{$value: data.items}`).
        case contextValue(path: String)
        case literal(JSONValue)
        case array([BodyValue])
        /// Members in the order written.
        case object([BodyMember])
    }

    public struct BodyMember: Sendable, Hashable {
        public var key: String
        public var value: BodyValue
        public init(key: String, value: BodyValue) {
            self.key = key
            self.value = value
        }
    }

    public enum Auth: Sendable, Hashable {
        case basic(username: TemplateText, password: TemplateText)
        case bearer(token: TemplateText)
        case hmac(HMACAuth)
        case standardWebhooks(secret: TemplateText)
        case googleServiceAccount(credentials: TemplateText, scope: String)
        case apnsJWT(keyID: TemplateText, teamID: TemplateText, privateKey: TemplateText)
    }

    public struct HMACAuth: Sendable, Hashable {
        public enum Algorithm: String, Sendable, Hashable { case sha1, sha256, sha512 }
        public enum Encoding: String, Sendable, Hashable { case hex, base64 }
        public var header: String
        public var secret: TemplateText
        public var algorithm: Algorithm
        public var encoding: Encoding
        public var prefix: String
        /// What is signed; nil = the body bytes.
        public var signed: TemplateText?

        public init(
            header: String, secret: TemplateText, algorithm: Algorithm, encoding: Encoding, prefix: String,
            signed: TemplateText?
        ) {
            self.header = header
            self.secret = secret
            self.algorithm = algorithm
            self.encoding = encoding
            self.prefix = prefix
            self.signed = signed
        }
    }

    /// Where a throttled answer says how long to wait, besides `Retry-After` (Matrix: `retry_after_ms`).
    public struct RetryAfterField: Sendable, Hashable {
        public var path: String
        public var milliseconds: Bool
        public init(path: String, milliseconds: Bool) {
            self.path = path
            self.milliseconds = milliseconds
        }
    }

    public struct ResponseRules: Sendable, Hashable {
        public var success: StatusSet
        public var transient: StatusSet
        /// "Slow down" answers: the channel waits and sends slower, and the attempt is not spent.
        public var throttled: StatusSet
        public var retryAfterField: RetryAfterField?
        /// A JSON field that must hold for a success status to count as success.
        public var successWhen: (path: String, equals: JSONValue)?
        /// Dotted path of the provider's message id in a JSON answer.
        public var messageIDPath: String?

        public init(
            success: StatusSet = .defaultSuccess, transient: StatusSet = .defaultTransient,
            successWhen: (path: String, equals: JSONValue)? = nil, messageIDPath: String? = nil,
            throttled: StatusSet = .defaultThrottled, retryAfterField: RetryAfterField? = nil
        ) {
            self.throttled = throttled
            self.retryAfterField = retryAfterField
            self.success = success
            self.transient = transient
            self.successWhen = successWhen
            self.messageIDPath = messageIDPath
        }

        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.success == rhs.success && lhs.transient == rhs.transient && lhs.successWhen?.path == rhs.successWhen?.path
                && lhs.successWhen?.equals == rhs.successWhen?.equals && lhs.messageIDPath == rhs.messageIDPath
                && lhs.throttled == rhs.throttled && lhs.retryAfterField == rhs.retryAfterField
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(success)
            hasher.combine(transient)
            hasher.combine(successWhen?.path)
            hasher.combine(successWhen?.equals)
            hasher.combine(messageIDPath)
            hasher.combine(throttled)
            hasher.combine(retryAfterField)
        }
    }
}

/// A set of HTTP statuses written as single codes and ranges (`[200-299, 304]`).
public struct StatusSet: Sendable, Hashable {
    public var ranges: [ClosedRange<Int>]
    public init(_ ranges: [ClosedRange<Int>]) { self.ranges = ranges }
    public func contains(_ status: Int) -> Bool { ranges.contains { $0.contains(status) } }

    public static let defaultSuccess = StatusSet([200...299])
    public static let defaultTransient = StatusSet([408...408, 425...425, 429...429, 500...599])
    /// 429 Too Many Requests: the provider asks to slow down; nothing is wrong with the message.
    public static let defaultThrottled = StatusSet([429...429])
}

/// An SMTP provider.
public struct SMTPProviderSpec: Sendable, Hashable {
    public enum StartTLS: String, Sendable, Hashable { case required, opportunistic, none }
    public var url: TemplateText
    public var startTLS: StartTLS
    public var username: TemplateText?
    public var password: TemplateText?
    public var from: TemplateText
    /// PEM file of the CAs trusted for STARTTLS / `smtps://` (a private CA); nil: the default.
    public var caFile: String?

    public init(
        url: TemplateText, startTLS: StartTLS, username: TemplateText?, password: TemplateText?, from: TemplateText,
        caFile: String? = nil
    ) {
        self.url = url
        self.startTLS = startTLS
        self.username = username
        self.password = password
        self.from = from
        self.caFile = caFile
    }
}

/// A request rate, e.g. `30/s`, with the burst allowed after a quiet spell (`rate_burst`; default 1:
/// attempts evenly spaced).
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public var count: Int
    public var per: Duration
    public var burst: Int
    public init(count: Int, per: Duration, burst: Int = 1) {
        self.count = count
        self.per = per
        self.burst = max(1, burst)
    }
    /// Attempts a second.
    public var perSecond: Double { Double(count) / per.timeInterval }
    public var description: String { "\(count)/\(per)" + (burst > 1 ? " (burst \(burst))" : "") }
}
