import Foundation
import HeraldCore
import HeraldTemplating

/// One way a channel can deliver, tried in order: read from the channel's YAML and compiled once, at
/// load (every template with the escaping of the place its value lands), then carried by the
/// configuration snapshot to the workers, which only render it.
public struct ProviderSpec: Sendable {
    public let name: String
    public let transport: Transport
    /// The secrets its templates refer to, sorted (the first missing one is reported).
    public let secretNames: [String]

    /// How the provider codes and splits SMS (`sms:`); nil for providers that don't send SMS.
    public let sms: SMSProviderSettings?
    /// How the provider reports delivery (`receipts:`); nil when it doesn't.
    public let receipts: ReceiptSpec?

    public enum Transport: Sendable {
        case http(HTTPProviderSpec)
        case smtp(SMTPProviderSpec)
        case webPush(WebPushProviderSpec)
    }

    public init(name: String, transport: Transport, sms: SMSProviderSettings? = nil, receipts: ReceiptSpec? = nil) {
        self.name = name
        self.transport = transport
        self.sms = sms
        self.receipts = receipts
        // Only what sending needs: a receipts secret is the gateway's (which checks callbacks), not the worker's.
        self.secretNames = Self.secretNames(in: transport)
    }

    /// Every `secrets.NAME` a template or a `{$value: secrets.NAME}` of `transport` uses. Found by
    /// walking the whole description, so a new field or auth kind needs nothing here.
    static func secretNames(in transport: Transport) -> [String] {
        var names = Set<String>()
        func visit(_ value: Any) {
            if let template = value as? CompiledTemplate {
                names.formUnion(template.secretNames)
                return
            }
            if case .contextValue(let path)? = value as? HTTPProviderSpec.BodyValue {
                let parts = path.split(separator: ".", omittingEmptySubsequences: false)
                if parts.count >= 2, parts[0] == "secrets" { names.insert(String(parts[1])) }
                return
            }
            if value is JSONValue { return }
            for child in Mirror(reflecting: value).children { visit(child.value) }
        }
        visit(transport)
        return names.sorted()
    }
}

/// How a provider reports what became of a message (`receipts:` of a provider): how its callbacks
/// to `/v1/receipts/{channel}/{provider}` are verified, where their fields are, what their statuses mean.
public struct ReceiptSpec: Sendable {
    public enum Verification: Sendable {
        /// The per-delivery token Herald puts in the callback URL (`{{receipts.url}}`) is the proof:
        /// only Herald and the provider it gave the URL to know it (Kannel's `dlr-url`).
        case deliveryToken
        /// `X-Twilio-Signature`: HMAC-SHA1, keyed with the account's auth token, of the full callback URL
        /// followed by every POST parameter's name and value in name order, base64.
        case twilioSignature(authToken: CompiledTemplate)
        /// Standard Webhooks: `webhook-id`, `webhook-timestamp` (within 5 minutes), `webhook-signature`.
        case standardWebhooks(secret: CompiledTemplate)

        /// The secret the check needs (nil for the delivery token, whose key is Herald's own).
        public var secret: CompiledTemplate? {
            switch self {
            case .deliveryToken: nil
            case .twilioSignature(let template), .standardWebhooks(let template): template
            }
        }
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
public struct HTTPProviderSpec: Sendable {
    public var method: String
    /// Compiled with `Escaping.url(for:)`: a URL that is exactly one value is taken whole.
    public var url: CompiledTemplate
    public var headers: [Field]
    public var body: Body?
    public var auth: Auth?
    public var response: ResponseRules
    /// PEM file of the CAs trusted for this provider's `https://` URL (a private CA); nil: the default.
    public var caFile: String?
    /// A media upload made before the send (Matrix `m.image` needs an `mxc://` URI first).
    public var upload: MediaUpload?

    /// `upload:` — when the value at `when` is present, Herald fetches `fetch` (through the SSRF guard,
    /// redirects not followed, at most `maxBytes`), sends the bytes to `url` with the provider's auth
    /// and the fetched Content-Type, and gives the answer's `result` path to the send as
    /// `{{upload.result}}` (with `upload.content_type`, `upload.size`, `upload.filename`).
    public struct MediaUpload: Sendable {
        public var when: String
        public var fetch: CompiledTemplate
        public var maxBytes: Int
        public var method: String
        public var url: CompiledTemplate
        public var resultPath: String
        public var response: ResponseRules

        public init(
            when: String, fetch: CompiledTemplate, maxBytes: Int, method: String, url: CompiledTemplate, resultPath: String,
            response: ResponseRules
        ) {
            self.when = when
            self.fetch = fetch
            self.maxBytes = maxBytes
            self.method = method
            self.url = url
            self.resultPath = resultPath
            self.response = response
        }
    }

    public init(
        method: String, url: CompiledTemplate, headers: [Field], body: Body?, auth: Auth?, response: ResponseRules,
        caFile: String? = nil, upload: MediaUpload? = nil
    ) {
        self.upload = upload
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.auth = auth
        self.response = response
        self.caFile = caFile
    }

    /// The URL is exactly one value (`{{to.webhook_url}}`): taken whole, not percent-encoded.
    public var urlIsSingleValue: Bool { url.source.isSingleValue }

    public enum Body: Sendable {
        /// A JSON structure whose string leaves are templates; serialised by Herald.
        case json(BodyValue)
        /// Form fields, each value a template; form-urlencoded by Herald.
        case form([Field])
        /// A text template escaped for `contentType` (`Escaping(contentType:)`).
        case text(CompiledTemplate, contentType: String)
    }

    /// A header or form field: a name and a template.
    public struct Field: Sendable {
        public var name: String
        public var value: CompiledTemplate
        public init(name: String, value: CompiledTemplate) {
            self.name = name
            self.value = value
        }
    }

    /// A node of a JSON body.
    public indirect enum BodyValue: Sendable {
        case template(CompiledTemplate)
        /// A JSON value copied from the template context (`{$value: data.items}`).
        case contextValue(path: String)
        case literal(JSONValue)
        /// `{$if: path, then: …, else: …}`: `then` when the context value at `path` is present (not
        /// null, false, "" or empty), `else` otherwise. A missing branch leaves the node out: an
        /// object drops the member, an array the element (an optional image block, say).
        case conditional(path: String, then: BodyValue?, else: BodyValue?)
        case array([BodyValue])
        /// Members in the order written.
        case object([BodyMember])
    }

    public struct BodyMember: Sendable {
        public var key: String
        public var value: BodyValue
        public init(key: String, value: BodyValue) {
            self.key = key
            self.value = value
        }
    }

    /// How a request is authenticated. A new kind is a case here, an entry in the parser's table
    /// (`ProviderParser.authKinds`) and a branch of the signer (`ProviderClient.authHeaders`).
    public enum Auth: Sendable {
        case basic(username: CompiledTemplate, password: CompiledTemplate)
        case bearer(token: CompiledTemplate)
        case hmac(HMACAuth)
        case standardWebhooks(secret: CompiledTemplate)
        case googleServiceAccount(credentials: CompiledTemplate, scope: String)
        case apnsJWT(keyID: CompiledTemplate, teamID: CompiledTemplate, privateKey: CompiledTemplate)
    }

    public struct HMACAuth: Sendable {
        public enum Algorithm: String, Sendable, Hashable { case sha1, sha256, sha512 }
        public enum Encoding: String, Sendable, Hashable { case hex, base64 }
        public var header: String
        public var secret: CompiledTemplate
        public var algorithm: Algorithm
        public var encoding: Encoding
        public var prefix: String
        /// What is signed; nil = the body bytes.
        public var signed: CompiledTemplate?

        public init(
            header: String, secret: CompiledTemplate, algorithm: Algorithm, encoding: Encoding, prefix: String,
            signed: CompiledTemplate?
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
public struct SMTPProviderSpec: Sendable {
    public enum StartTLS: String, Sendable, Hashable { case required, opportunistic, none }
    public var url: CompiledTemplate
    public var startTLS: StartTLS
    public var username: CompiledTemplate?
    public var password: CompiledTemplate?
    public var from: CompiledTemplate
    /// PEM file of the CAs trusted for STARTTLS / `smtps://` (a private CA); nil: the default.
    public var caFile: String?

    public init(
        url: CompiledTemplate, startTLS: StartTLS, username: CompiledTemplate?, password: CompiledTemplate?, from: CompiledTemplate,
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
