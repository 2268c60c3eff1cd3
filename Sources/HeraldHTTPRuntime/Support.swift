internal import CCurlShim

// MARK: - Error mapping

enum ErrorMapping {
    /// - Parameter smtp: the server replies of an SMTP transfer (nil for HTTP).
    static func error(
        for code: CURLcode,
        detail: String,
        blockedAddress: String?,
        smtputf8Missing: Bool = false,
        info: TransferInfo,
        smtp: SMTPReplies?
    ) -> TransferError {
        let curlCode = Int32(bitPattern: code.rawValue)
        var text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        // libcurl says "RCPT failed: 550": the server's own words say why.
        let replyText = smtp?.refusalText ?? ""
        if !replyText.isEmpty { text += " (server: \(replyText))" }

        func make(_ errorCode: TransferError.Code, sent: Bool, _ message: String = text) -> TransferError {
            TransferError(
                code: errorCode,
                message: message,
                curlCode: curlCode,
                requestMayHaveBeenSent: sent,
                protocolResponseCode: info.responseCode,
                serverReply: replyText,
                serverExtensions: smtp?.extensions
            )
        }

        if let blockedAddress, code == CURLE_COULDNT_CONNECT || code == CURLE_ABORTED_BY_CALLBACK {
            return make(
                .blockedAddress,
                sent: false,
                "refused to connect to non-public address \(blockedAddress) (restrictToPublicAddresses)"
            )
        }

        if smtputf8Missing, code == CURLE_ABORTED_BY_CALLBACK {
            return make(
                .smtputf8Unavailable,
                sent: false,
                "the server does not announce SMTPUTF8 (RFC 6531), which an address with a non-ASCII local part needs; "
                    + "nothing was sent"
            )
        }

        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return make(.timeout, sent: info.requestMayHaveBeenSent)
        case CURLE_COULDNT_CONNECT:
            return make(.connectFailed, sent: false)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return make(.dnsFailed, sent: false)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS:
            return make(.tlsVerificationFailed, sent: false)
        case CURLE_USE_SSL_FAILED:
            return make(.tlsUnavailable, sent: false)
        case CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CRL_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_ENGINE_NOTFOUND,
            CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CLIENTCERT:
            return make(.tlsConfigurationInvalid, sent: false)
        case CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CIPHER:
            return make(.tlsFailed, sent: false)
        case CURLE_LOGIN_DENIED:
            return make(.authenticationFailed, sent: false)
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_BAD_FUNCTION_ARGUMENT, CURLE_NOT_BUILT_IN,
            CURLE_UNKNOWN_OPTION:
            return make(.invalidRequest, sent: false)
        default:
            break
        }

        if smtp != nil, info.responseCode >= 400,
            code == CURLE_SEND_ERROR || code == CURLE_WEIRD_SERVER_REPLY || code == CURLE_RECV_ERROR
                || code == CURLE_QUOTE_ERROR
        {
            // The server answered MAIL FROM / RCPT TO / DATA with a 4xx/5xx reply:
            // the message was refused, not (possibly) delivered.
            return make(.rejected, sent: false, replyText.isEmpty ? "server replied \(info.responseCode): \(text)" : text)
        }

        switch code {
        case CURLE_SEND_ERROR:
            return make(.sendFailed, sent: true)
        case CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2,
            CURLE_HTTP2_STREAM, CURLE_BAD_CONTENT_ENCODING:
            return make(.receiveFailed, sent: true)
        default:
            return make(.other, sent: info.requestMayHaveBeenSent)
        }
    }
}

// MARK: - Validation

enum RequestValidation {
    static func validate(_ request: HTTPRequest) throws(TransferError) {
        guard !request.method.isEmpty, request.method.utf8.allSatisfy(isTokenByte) else {
            throw invalid("invalid HTTP method \"\(request.method)\"")
        }
        try validateURL(request.url, schemes: ["http", "https"])
        for field in request.headers {
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenByte) else {
                throw invalid("invalid header name \"\(field.name)\"")
            }
            guard field.value.utf8.allSatisfy(isFieldValueByte) else {
                throw invalid("header \(field.name) has a control character (CR, LF or NUL) in its value")
            }
        }
        try validateTimeouts(request.timeout, request.connectTimeout)
    }

    static func validate(_ mail: SMTPRequest) throws(TransferError) {
        try validateURL(mail.url, schemes: ["smtp", "smtps"])
        guard isMailbox(mail.from, allowEmpty: true) else {
            throw invalid("invalid sender address \"\(mail.from)\"")
        }
        guard !mail.recipients.isEmpty else { throw invalid("no recipients") }
        for recipient in mail.recipients where !isMailbox(recipient, allowEmpty: false) {
            throw invalid("invalid recipient address \"\(recipient)\"")
        }
        for credential in [mail.username, mail.password].compactMap({ $0 }) where credential.utf8.contains(0) {
            throw invalid("credentials must not contain NUL")
        }
        guard !mail.message.isEmpty else { throw invalid("empty message") }
        try validateTimeouts(mail.timeout, mail.connectTimeout)
    }

    private static func validateURL(_ url: String, schemes: Set<String>) throws(TransferError) {
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw invalid("URL contains whitespace or control characters")
        }
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw invalid("URL must be absolute: \(url)")
        }
        let scheme = url[..<colon].lowercased()
        guard schemes.contains(scheme) else {
            throw invalid("unsupported URL scheme \"\(scheme)\" (allowed: \(schemes.sorted().joined(separator: ", ")))")
        }
    }

    private static func validateTimeouts(_ timeout: Duration, _ connectTimeout: Duration) throws(TransferError) {
        guard timeout > .zero, connectTimeout > .zero else {
            throw invalid("timeouts must be positive")
        }
    }

    private static func isMailbox(_ address: String, allowEmpty: Bool) -> Bool {
        if address.isEmpty { return allowEmpty }
        return address.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
    }

    private static func invalid(_ message: String) -> TransferError {
        TransferError(code: .invalidRequest, message: message)
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// Field values: anything but CR, LF, NUL and other C0 controls except HTAB.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }
}

// MARK: - Header parsing

enum HeaderParser {
    /// Parses the final header block collected by the C header callback
    /// (status line first, CRLF-separated, ending with an empty line).
    static func parse(_ bytes: [UInt8]) -> [HTTPHeaderField] {
        var fields: [HTTPHeaderField] = []
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty { continue }
            if line.starts(with: "HTTP/".utf8) { continue }
            if line.first == UInt8(ascii: " ") || line.first == UInt8(ascii: "\t") {
                // obs-fold continuation of the previous field
                if !fields.isEmpty {
                    let more = trim(line)
                    if !more.isEmpty {
                        fields[fields.count - 1].value += " " + String(decoding: more, as: UTF8.self)
                    }
                }
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = trim(line[..<colon])
            let value = trim(line[line.index(after: colon)...])
            guard !name.isEmpty else { continue }
            fields.append(HTTPHeaderField(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return fields
    }

    private static func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }
}

// MARK: - Address policy

/// The SSRF guard's address classification, exposed for tests and for callers
/// that want to pre-check literal addresses. The guard itself runs in C on
/// every connect and on every connection reuse.
public enum AddressPolicy {
    /// `true` when `address` (an IPv4 or IPv6 literal) is not a public unicast
    /// address; `nil` when it is not an IP literal.
    public static func isRestricted(_ address: String) -> Bool? {
        switch herald_address_string_is_restricted(address) {
        case 0: return false
        case 1: return true
        default: return nil
        }
    }
}
