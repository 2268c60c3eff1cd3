/// One message submission over SMTP, executed by ``CurlRuntime/sendMail(_:)``.
public struct SMTPRequest: Sendable {
    /// How to use TLS on a plain `smtp://` connection (`smtps://` is always TLS).
    public enum STARTTLSPolicy: Sendable, Hashable {
        /// Never upgrade.
        case none
        /// Upgrade when the server offers STARTTLS, continue in plain text otherwise.
        case opportunistic
        /// Fail with ``TransferError/Code/tlsFailed`` unless the connection is encrypted.
        case required
    }

    /// `smtp://host:port` or `smtps://host:port` (an optional path is the EHLO name).
    public var url: String
    public var startTLS: STARTTLSPolicy
    public var username: String?
    public var password: String?
    /// Envelope sender (MAIL FROM), a bare address such as `alerts@example.com`.
    public var from: String
    /// Envelope recipients (RCPT TO), bare addresses.
    public var recipients: [String]
    /// The complete RFC 5322 message (headers, blank line, body) with CRLF line ends.
    public var message: [UInt8]
    public var timeout: Duration
    public var connectTimeout: Duration
    /// Same SSRF guard as ``HTTPRequest/restrictToPublicAddresses``.
    public var restrictToPublicAddresses: Bool

    public init(
        url: String,
        startTLS: STARTTLSPolicy = .required,
        username: String? = nil,
        password: String? = nil,
        from: String,
        recipients: [String],
        message: [UInt8],
        timeout: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(10),
        restrictToPublicAddresses: Bool = true
    ) {
        self.url = url
        self.startTLS = startTLS
        self.username = username
        self.password = password
        self.from = from
        self.recipients = recipients
        self.message = message
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.restrictToPublicAddresses = restrictToPublicAddresses
    }
}

/// The server accepted the message.
public struct SMTPResponse: Sendable {
    /// The server's final reply code (250 on acceptance).
    public var statusCode: Int
    public var totalTime: Duration

    public init(statusCode: Int, totalTime: Duration) {
        self.statusCode = statusCode
        self.totalTime = totalTime
    }
}
