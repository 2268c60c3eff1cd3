/// Why a transfer produced no response.
public struct TransferError: Error, Sendable, CustomStringConvertible {
    public var code: Code
    public var message: String
    /// The libcurl `CURLcode` (0 when the error did not come from libcurl).
    public var curlCode: Int32
    /// true when the request may have reached the server (e.g. timed out or
    /// connection reset after sending) — callers decide whether a resend is safe
    public var requestMayHaveBeenSent: Bool
    /// The last protocol response code seen (an SMTP reply code such as 550,
    /// or an HTTP status), 0 when none was received.
    public var protocolResponseCode: Int
    /// SMTP: the server's last reply as it wrote it (`550 5.1.1 <…>: Recipient address rejected: …`),
    /// continuation lines joined with a space; empty when there was none. Also in ``message``.
    public var serverReply: String
    /// SMTP: the service extensions (EHLO keywords, upper case) the server announced on this
    /// transfer's connection; nil when the connection was reused or EHLO was never answered.
    public var serverExtensions: Set<String>?

    public init(
        code: Code,
        message: String,
        curlCode: Int32 = 0,
        requestMayHaveBeenSent: Bool = false,
        protocolResponseCode: Int = 0,
        serverReply: String = "",
        serverExtensions: Set<String>? = nil
    ) {
        self.code = code
        self.message = message
        self.curlCode = curlCode
        self.requestMayHaveBeenSent = requestMayHaveBeenSent
        self.protocolResponseCode = protocolResponseCode
        self.serverReply = serverReply
        self.serverExtensions = serverExtensions
    }

    public var description: String {
        var text = "TransferError(\(self.code)): \(self.message)"
        if self.curlCode != 0 { text += " [curl \(self.curlCode)]" }
        if self.protocolResponseCode != 0 { text += " [response \(self.protocolResponseCode)]" }
        if self.requestMayHaveBeenSent { text += " (request may have been sent)" }
        return text
    }

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case timeout
            case connectFailed
            case dnsFailed
            case tlsFailed
            case tlsVerificationFailed
            case tlsUnavailable
            case tlsConfigurationInvalid
            case smtputf8Unavailable
            case sendFailed
            case receiveFailed
            case blockedAddress
            case invalidRequest
            case shutdown
            case authenticationFailed
            case rejected
            case other
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The total or connect timeout elapsed.
        public static let timeout = Code(.timeout)
        /// The TCP connection could not be established (refused, unreachable).
        public static let connectFailed = Code(.connectFailed)
        /// The host name could not be resolved.
        public static let dnsFailed = Code(.dnsFailed)
        /// The TLS handshake failed (reset, no common protocol version or cipher): may pass later.
        public static let tlsFailed = Code(.tlsFailed)
        /// The server's certificate was refused: not issued by a trusted CA (self-signed, a private
        /// CA that is not configured), expired, or for another host name. A configuration error.
        public static let tlsVerificationFailed = Code(.tlsVerificationFailed)
        /// TLS was required (`STARTTLS` policy `required`) but the server does not offer STARTTLS.
        public static let tlsUnavailable = Code(.tlsUnavailable)
        /// The local TLS settings can't be used (CA file missing or unreadable, bad client certificate).
        public static let tlsConfigurationInvalid = Code(.tlsConfigurationInvalid)
        /// An envelope address needs SMTPUTF8 (RFC 6531) and the server does not announce it.
        public static let smtputf8Unavailable = Code(.smtputf8Unavailable)
        /// Sending the request failed.
        public static let sendFailed = Code(.sendFailed)
        /// Receiving the response failed (reset, empty or malformed reply).
        public static let receiveFailed = Code(.receiveFailed)
        /// The SSRF guard refused a non-public address.
        public static let blockedAddress = Code(.blockedAddress)
        /// The request is malformed (URL, method, header characters, unsupported scheme).
        public static let invalidRequest = Code(.invalidRequest)
        /// The runtime shut down before the transfer completed.
        public static let shutdown = Code(.shutdown)
        /// The server refused the credentials (SMTP AUTH).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The server rejected the request with a protocol reply (SMTP 4xx/5xx);
        /// see ``TransferError/protocolResponseCode``.
        public static let rejected = Code(.rejected)
        /// Anything else.
        public static let other = Code(.other)

        public var description: String { self.backing.rawValue }
    }
}
