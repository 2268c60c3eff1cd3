/// One message submission over SMTP, executed by ``CurlRuntime/sendMail(_:)``.
public struct SMTPRequest: Sendable {
    /// How to use TLS on a plain `smtp://` connection (`smtps://` is always TLS).
    public enum STARTTLSPolicy: Sendable, Hashable {
        /// Never upgrade.
        case none
        /// Upgrade when the server offers STARTTLS, continue in plain text otherwise.
        case opportunistic
        /// Fail with ``TransferError/Code/tlsUnavailable`` unless the server offers STARTTLS.
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
    /// PEM file of the certificate authorities trusted for STARTTLS and `smtps://` (instead of
    /// ``CurlRuntime/Configuration/defaultCAFile`` and the system's bundle).
    public var caFile: String?

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
        restrictToPublicAddresses: Bool = true,
        caFile: String? = nil
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
        self.caFile = caFile
    }

    /// What a connection must have been opened with to carry this message: connections are only
    /// reused between transfers with the same profile, so a `required` message never goes out on
    /// a connection a `none` transfer left in plain text, and a connection verified against one
    /// CA never carries a message that trusts another.
    /// An envelope address has a non-ASCII character (a UTF-8 local part; domains should be
    /// A-labels already): the server must announce SMTPUTF8 (RFC 6531), else the transfer fails
    /// with ``TransferError/Code/smtputf8Unavailable`` before MAIL FROM. libcurl adds the SMTPUTF8
    /// parameter itself when the server announces it.
    public var requiresSMTPUTF8: Bool {
        !([self.from] + self.recipients).allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
    }

    var connectionProfile: SMTPConnectionProfile {
        SMTPConnectionProfile(startTLS: self.startTLS, caFile: self.caFile)
    }
}

/// The TLS settings an SMTP connection was opened with (see ``SMTPRequest/connectionProfile``).
struct SMTPConnectionProfile: Hashable, Sendable {
    var startTLS: SMTPRequest.STARTTLSPolicy
    /// The request's CA file (nil: the runtime's default, which is the same for every transfer).
    var caFile: String?
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
