import Foundation
import HeraldCore
import HeraldProviderModel
import HeraldHTTPRuntime

/// The outcome of one attempt through one provider, ready for the attempt log.
public struct ProviderResult: Sendable, Hashable {
    public var outcome: AttemptOutcome
    public var httpStatus: Int?
    public var error: String?
    public var providerMessageID: String?
    /// From a `Retry-After` header (seconds or HTTP date) on a non-success answer (429, 503, …).
    public var retryAfter: Duration?

    public init(
        outcome: AttemptOutcome, httpStatus: Int? = nil, error: String? = nil, providerMessageID: String? = nil,
        retryAfter: Duration? = nil
    ) {
        self.outcome = outcome
        self.httpStatus = httpStatus
        self.error = error
        self.providerMessageID = providerMessageID
        self.retryAfter = retryAfter
    }
}

/// An attempt that ended before (or instead of) a provider's answer: a missing secret, an invalid
/// credential, a failed token exchange. `buildRequest` throws it; `attempt` turns it into a result.
public struct ProviderFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var result: ProviderResult

    public init(_ outcome: AttemptOutcome, _ message: String, httpStatus: Int? = nil, retryAfter: Duration? = nil) {
        result = ProviderResult(outcome: outcome, httpStatus: httpStatus, error: message, retryAfter: retryAfter)
    }

    public var description: String { result.error ?? "\(result.outcome.rawValue)" }

    public init(_ result: ProviderResult) { self.result = result }

    static func permanent(_ message: String) -> ProviderFailure { ProviderFailure(.permanentFailure, message) }
}

/// Reads a provider's answer with its `response:` rules.
public enum ResponseClassifier {
    /// How many bytes of an answer go into an error text.
    public static let excerptBytes = 300

    public static func classify(
        _ response: HTTPResponse, rules: HTTPProviderSpec.ResponseRules, now: Date = Date()
    ) -> ProviderResult {
        let status = response.status
        if rules.success.contains(status) {
            let json = rules.successWhen != nil || rules.messageIDPath != nil ? parseJSON(response.body) : nil
            if let condition = rules.successWhen {
                let actual = json?.value(atPath: condition.path)
                guard let actual, jsonEquals(actual, condition.equals) else {
                    return ProviderResult(outcome: .permanentFailure, httpStatus: status, error: errorText(status: status, body: response.body))
                }
            }
            let messageID = rules.messageIDPath.flatMap { json?.value(atPath: $0) }.flatMap(scalarText)
            return ProviderResult(outcome: .success, httpStatus: status, providerMessageID: messageID)
        }
        let outcome: AttemptOutcome =
            rules.throttled.contains(status) ? .throttled : rules.transient.contains(status) ? .transientFailure : .permanentFailure
        return ProviderResult(
            outcome: outcome, httpStatus: status, error: errorText(status: status, body: response.body),
            retryAfter: retryAfter(response, field: outcome == .throttled ? rules.retryAfterField : nil, now: now))
    }

    /// How long the answer asks to wait: the declared body field when it has one (Matrix's
    /// `retry_after_ms` is finer than its `Retry-After` seconds), else `Retry-After`.
    static func retryAfter(_ response: HTTPResponse, field: HTTPProviderSpec.RetryAfterField?, now: Date) -> Duration? {
        if let field, let value = parseJSON(response.body)?.value(atPath: field.path) {
            let number: Double? =
                switch value {
                case .integer(let integer): Double(integer)
                case .double(let double): double
                case .string(let text): Double(text)
                default: nil
                }
            if let number, number.isFinite, number >= 0 {
                let milliseconds = min(field.milliseconds ? number : number * 1000, 86_400_000)
                return .milliseconds(Int64(milliseconds.rounded(.up)))
            }
        }
        return response.header("Retry-After").flatMap { RetryAfter.parse($0, now: now) }
    }

    /// Failures that another attempt would only repeat: configuration errors, on Herald's side
    /// (a refused address, a malformed request, an unusable CA file) or the server's (a certificate
    /// no configured CA vouches for, expired or for another name; no STARTTLS where it is required;
    /// no SMTPUTF8 for a non-ASCII address).
    /// Retrying them burns every attempt of the policy for nothing.
    public static let permanentTransferCodes: Set<TransferError.Code> = [
        .blockedAddress, .invalidRequest, .tlsVerificationFailed, .tlsUnavailable, .tlsConfigurationInvalid,
        .smtputf8Unavailable,
    ]

    /// A failure to get an answer at all.
    public static func classify(_ error: any Error) -> ProviderResult {
        if let failure = error as? ProviderFailure { return failure.result }
        if let transfer = error as? TransferError {
            let outcome: AttemptOutcome
            if Self.permanentTransferCodes.contains(transfer.code) {
                outcome = .permanentFailure
            } else if transfer.requestMayHaveBeenSent {
                outcome = .ambiguous
            } else {
                outcome = .transientFailure
            }
            return ProviderResult(outcome: outcome, error: "\(transfer.code): \(transfer.message)")
        }
        if error is CancellationError {
            // The request may already be on the wire: only the retry policy can say whether a resend is safe.
            return ProviderResult(outcome: .ambiguous, error: "attempt cancelled")
        }
        return ProviderResult(outcome: .transientFailure, error: "\(error)")
    }

    /// `HTTP <status>: <first 300 bytes of the body>` (cut at a character boundary).
    public static func errorText(status: Int, body: [UInt8]) -> String {
        "HTTP \(status): " + excerpt(body)
    }

    static func excerpt(_ body: [UInt8], limit: Int = excerptBytes) -> String {
        guard body.count > limit else { return String(decoding: body, as: UTF8.self) }
        var end = limit
        // Don't cut a UTF-8 sequence in half: back off over continuation bytes.
        while end > 0, body[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: body[..<end], as: UTF8.self)
    }

    static func parseJSON(_ body: [UInt8]) -> JSONValue? {
        guard !body.isEmpty else { return nil }
        return try? JSONDecoder().decode(JSONValue.self, from: Data(body))
    }

    /// Equality where `1` and `1.0` are the same number.
    static func jsonEquals(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.integer(let a), .double(let b)), (.double(let b), .integer(let a)): return Double(a) == b
        default: return lhs == rhs
        }
    }

    /// A message id as text: strings as they are, numbers written out (Telegram's `message_id` is a number).
    static func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let string): return string.isEmpty ? nil : string
        case .integer(let integer): return String(integer)
        case .double(let double):
            if double.isFinite, double == double.rounded(), abs(double) < 1e18 { return String(Int64(double)) }
            return double.isFinite ? String(double) : nil
        default: return nil
        }
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
public enum RetryAfter {
    public static func parse(_ value: String, now: Date = Date()) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Absurdly large values are capped rather than overflowing (a day is more than any policy waits).
            return .seconds(Int64(text.prefix(9)).map { min($0, 86_400) } ?? 86_400)
        }
        guard let date = httpDate(text) else { return nil }
        let seconds = date.timeIntervalSince(now)
        return seconds <= 0 ? .zero : .seconds(Int64(seconds.rounded(.up)))
    }

    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), and the obsolete RFC 850
    /// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`) forms.
    static func httpDate(_ text: String) -> Date? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        var day: Int?
        var month: Int?
        var year: Int?
        var time: String?
        if parts.count == 6, parts[5].uppercased() == "GMT" {
            day = Int(parts[1])
            month = months.firstIndex(of: parts[2].lowercased()).map { $0 + 1 }
            year = Int(parts[3])
            time = parts[4]
        } else if parts.count == 4, parts[3].uppercased() == "GMT" {
            let date = parts[1].split(separator: "-").map(String.init)
            guard date.count == 3 else { return nil }
            day = Int(date[0])
            month = months.firstIndex(of: date[1].lowercased()).map { $0 + 1 }
            // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
            year = Int(date[2]).map { $0 < 100 ? ($0 + 2000 > currentYear + 50 ? $0 + 1900 : $0 + 2000) : $0 }
            time = parts[2]
        } else if parts.count == 5 {
            month = months.firstIndex(of: parts[1].lowercased()).map { $0 + 1 }
            day = Int(parts[2])
            time = parts[3]
            year = Int(parts[4])
        }
        guard let day, let month, let year, let time else { return nil }
        let clock = time.split(separator: ":").compactMap { Int($0) }
        guard clock.count == 3, (1...31).contains(day), (0...23).contains(clock[0]), (0...59).contains(clock[1]),
            (0...60).contains(clock[2])
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "GMT")!
        return calendar.date(
            from: DateComponents(year: year, month: month, day: day, hour: clock[0], minute: clock[1], second: clock[2]))
    }

    private static var currentYear: Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "GMT")!
        return calendar.component(.year, from: Date())
    }
}
