import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import Testing

@Suite("Classification")
struct ClassificationTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var status: Int
        var body: String = ""
        var headers: [HTTPHeaderField] = []
        var rules = HTTPProviderSpec.ResponseRules()
        var expected: ProviderResult
        var testDescription: String { name }
    }

    static let slack = HTTPProviderSpec.ResponseRules(successWhen: ("ok", true), messageIDPath: "ts")
    static let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT

    static let rows: [Row] = [
        Row(name: "2xx, no rules", status: 202, expected: .init(outcome: .success, httpStatus: 202)),
        Row(
            name: "message_id string", status: 201, body: #"{"sid":"SM123","status":"queued"}"#,
            rules: .init(messageIDPath: "sid"), expected: .init(outcome: .success, httpStatus: 201, providerMessageID: "SM123")),
        Row(
            name: "message_id number at a nested path", status: 200, body: #"{"ok":true,"result":{"message_id":4711}}"#,
            rules: .init(messageIDPath: "result.message_id"),
            expected: .init(outcome: .success, httpStatus: 200, providerMessageID: "4711")),
        Row(
            name: "message_id in an array", status: 200, body: #"{"messages":[{"id":"wamid.X"}]}"#,
            rules: .init(messageIDPath: "messages.0.id"),
            expected: .init(outcome: .success, httpStatus: 200, providerMessageID: "wamid.X")),
        Row(
            name: "message_id absent is still success", status: 200, body: "not json",
            rules: .init(messageIDPath: "id"), expected: .init(outcome: .success, httpStatus: 200)),
        Row(
            name: "success_when holds", status: 200, body: #"{"ok":true,"ts":"1700000000.000100"}"#, rules: slack,
            expected: .init(outcome: .success, httpStatus: 200, providerMessageID: "1700000000.000100")),
        Row(
            name: "success_when fails (Slack ok:false)", status: 200, body: #"{"ok":false,"error":"channel_not_found"}"#,
            rules: slack,
            expected: .init(outcome: .permanentFailure, httpStatus: 200, error: #"HTTP 200: {"ok":false,"error":"channel_not_found"}"#)),
        Row(
            name: "success_when on a non-JSON answer", status: 200, body: "ok", rules: slack,
            expected: .init(outcome: .permanentFailure, httpStatus: 200, error: "HTTP 200: ok")),
        Row(
            name: "success_when with a number", status: 200, body: #"{"code":0.0}"#,
            rules: .init(successWhen: ("code", 0)), expected: .init(outcome: .success, httpStatus: 200)),
        Row(
            name: "400 permanent", status: 400, body: #"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
            expected: .init(outcome: .permanentFailure, httpStatus: 400, error: #"HTTP 400: {"code":21211,"message":"Invalid 'To' Phone Number"}"#)),
        Row(name: "404 permanent", status: 404, expected: .init(outcome: .permanentFailure, httpStatus: 404, error: "HTTP 404: ")),
        Row(name: "408 transient", status: 408, expected: .init(outcome: .transientFailure, httpStatus: 408, error: "HTTP 408: ")),
        Row(
            name: "429 throttled with Retry-After seconds", status: 429, body: "slow down",
            headers: [HTTPHeaderField("retry-after", "120")],
            expected: .init(outcome: .throttled, httpStatus: 429, error: "HTTP 429: slow down", retryAfter: .seconds(120))),
        Row(
            name: "429 with Matrix's retry_after_ms, finer than its Retry-After", status: 429,
            body: #"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":1461}"#,
            headers: [HTTPHeaderField("Retry-After", "2")],
            rules: .init(retryAfterField: .init(path: "retry_after_ms", milliseconds: true)),
            expected: .init(
                outcome: .throttled, httpStatus: 429,
                error: #"HTTP 429: {"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":1461}"#,
                retryAfter: .milliseconds(1461))),
        Row(
            name: "a declared retry-after field missing: Retry-After", status: 429, body: "{}", headers: [HTTPHeaderField("Retry-After", "2")],
            rules: .init(retryAfterField: .init(path: "wait", milliseconds: false)),
            expected: .init(outcome: .throttled, httpStatus: 429, error: "HTTP 429: {}", retryAfter: .seconds(2))),
        Row(
            name: "429 transient when the channel opts out of throttling", status: 429, rules: .init(throttled: StatusSet([])),
            expected: .init(outcome: .transientFailure, httpStatus: 429, error: "HTTP 429: ")),
        Row(
            name: "503 with Retry-After HTTP date", status: 503, headers: [HTTPHeaderField("Retry-After", "Tue, 14 Nov 2023 22:14:05 GMT")],
            expected: .init(outcome: .transientFailure, httpStatus: 503, error: "HTTP 503: ", retryAfter: .seconds(45))),
        Row(
            name: "Retry-After date in the past", status: 503, headers: [HTTPHeaderField("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")],
            expected: .init(outcome: .transientFailure, httpStatus: 503, error: "HTTP 503: ", retryAfter: .zero)),
        Row(
            name: "Retry-After garbage ignored", status: 429, headers: [HTTPHeaderField("Retry-After", "soon")],
            expected: .init(outcome: .throttled, httpStatus: 429, error: "HTTP 429: ")),
        Row(
            name: "Retry-After read on a permanent failure too", status: 403, headers: [HTTPHeaderField("Retry-After", "5")],
            expected: .init(outcome: .permanentFailure, httpStatus: 403, error: "HTTP 403: ", retryAfter: .seconds(5))),
        Row(
            name: "custom transient set", status: 409, rules: .init(transient: StatusSet([409...409])),
            expected: .init(outcome: .transientFailure, httpStatus: 409, error: "HTTP 409: ")),
        Row(
            name: "500 not transient when the set says so", status: 500, rules: .init(transient: StatusSet([429...429])),
            expected: .init(outcome: .permanentFailure, httpStatus: 500, error: "HTTP 500: ")),
        Row(
            name: "custom success set", status: 302, rules: .init(success: StatusSet([200...299, 302...302])),
            expected: .init(outcome: .success, httpStatus: 302)),
        Row(
            name: "3xx is a failure by default", status: 301,
            expected: .init(outcome: .permanentFailure, httpStatus: 301, error: "HTTP 301: ")),
    ]

    @Test("status, success_when, message_id, Retry-After", arguments: rows)
    func table(_ row: Row) {
        let response = HTTPResponse(status: row.status, headers: row.headers, body: Array(row.body.utf8))
        #expect(ResponseClassifier.classify(response, rules: row.rules, now: Self.now) == row.expected)
    }

    @Test("error text keeps the first 300 bytes and never splits a character")
    func excerpt() {
        let long = String(repeating: "a", count: 299) + "é" + String(repeating: "b", count: 50)
        let text = ResponseClassifier.errorText(status: 500, body: Array(long.utf8))
        #expect(text == "HTTP 500: " + String(repeating: "a", count: 299))
        let ascii = ResponseClassifier.errorText(status: 500, body: Array(String(repeating: "x", count: 400).utf8))
        #expect(ascii == "HTTP 500: " + String(repeating: "x", count: 300))
    }

    @Test("transport failures", arguments: [
        (TransferError(code: .blockedAddress, message: "refused"), AttemptOutcome.permanentFailure),
        (TransferError(code: .invalidRequest, message: "bad url"), .permanentFailure),
        (TransferError(code: .timeout, message: "timed out", requestMayHaveBeenSent: true), .ambiguous),
        (TransferError(code: .receiveFailed, message: "reset", requestMayHaveBeenSent: true), .ambiguous),
        (TransferError(code: .timeout, message: "connect timed out"), .transientFailure),
        (TransferError(code: .connectFailed, message: "refused"), .transientFailure),
        (TransferError(code: .dnsFailed, message: "nxdomain"), .transientFailure),
        (TransferError(code: .tlsFailed, message: "handshake"), .transientFailure),
        // TLS configuration errors: another attempt would only fail the same way.
        (TransferError(code: .tlsVerificationFailed, message: "self-signed certificate"), .permanentFailure),
        (TransferError(code: .tlsUnavailable, message: "STARTTLS not supported"), .permanentFailure),
        (TransferError(code: .tlsConfigurationInvalid, message: "error setting certificate file"), .permanentFailure),
        (TransferError(code: .smtputf8Unavailable, message: "no SMTPUTF8"), .permanentFailure),
    ])
    func transport(error: TransferError, outcome: AttemptOutcome) {
        let result = ResponseClassifier.classify(error)
        #expect(result.outcome == outcome)
        #expect(result.httpStatus == nil)
        #expect(result.error?.contains(error.message) == true)
    }

    @Test("Retry-After forms", arguments: [
        ("0", Duration.zero), ("  30 ", .seconds(30)), ("Tue, 14 Nov 2023 22:15:20 GMT", .seconds(120)),
        ("Tuesday, 14-Nov-23 22:15:20 GMT", .seconds(120)), ("Tue Nov 14 22:15:20 2023", .seconds(120)),
    ])
    func retryAfter(text: String, expected: Duration) {
        #expect(RetryAfter.parse(text, now: Self.now) == expected)
    }

    @Test("Retry-After that isn't one", arguments: ["", "-5", "1.5", "tomorrow", "Tue, 32 Nov 2023 22:15:20 GMT"])
    func retryAfterInvalid(text: String) {
        #expect(RetryAfter.parse(text, now: Self.now) == nil)
    }
}
