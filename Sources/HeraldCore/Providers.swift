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

    public enum Transport: Sendable, Hashable {
        case http(HTTPProviderSpec)
        case smtp(SMTPProviderSpec)
        case webPush(WebPushProviderSpec)
    }

    public init(name: String, transport: Transport) {
        self.name = name
        self.transport = transport
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

    public struct ResponseRules: Sendable, Hashable {
        public var success: StatusSet
        public var transient: StatusSet
        /// A JSON field that must hold for a success status to count as success.
        public var successWhen: (path: String, equals: JSONValue)?
        /// Dotted path of the provider's message id in a JSON answer.
        public var messageIDPath: String?

        public init(
            success: StatusSet = .defaultSuccess, transient: StatusSet = .defaultTransient,
            successWhen: (path: String, equals: JSONValue)? = nil, messageIDPath: String? = nil
        ) {
            self.success = success
            self.transient = transient
            self.successWhen = successWhen
            self.messageIDPath = messageIDPath
        }

        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.success == rhs.success && lhs.transient == rhs.transient && lhs.successWhen?.path == rhs.successWhen?.path
                && lhs.successWhen?.equals == rhs.successWhen?.equals && lhs.messageIDPath == rhs.messageIDPath
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(success)
            hasher.combine(transient)
            hasher.combine(successWhen?.path)
            hasher.combine(successWhen?.equals)
            hasher.combine(messageIDPath)
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

/// A request rate, e.g. `30/s`.
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public var count: Int
    public var per: Duration
    public init(count: Int, per: Duration) {
        self.count = count
        self.per = per
    }
    public var description: String { "\(count)/\(per)" }
}
