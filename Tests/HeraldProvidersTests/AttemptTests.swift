import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import Testing

/// Whole attempts through a running runtime against a local server.
@Suite("Attempts")
struct AttemptTests {
    @Test("success with a message id; the request arrives as built")
    func success() async throws {
        let server = try LocalHTTPServer { _ in .json(201, #"{"sid":"SM42"}"#) }
        defer { server.stop() }
        try await Fixtures.withRuntime { runtime in
            let client = try Fixtures.client(
                Fixtures.http(
                    url: server.url("/2010-04-01/Accounts/{{secrets.SID}}/Messages.json"),
                    headers: [("Accept", "application/json")],
                    body: .form([.init(name: "To", value: Fixtures.t("{{to.phone}}")), .init(name: "Body", value: Fixtures.t("{{message.text}}"))]),
                    auth: .basic(username: Fixtures.t("{{secrets.SID}}"), password: Fixtures.t("{{secrets.TOKEN}}")),
                    response: .init(messageIDPath: "sid")),
                runtime: runtime, secrets: ["SID": "AC1", "TOKEN": "t"])
            #expect(client.name == "test-http")
            let result = await client.attempt(Fixtures.job(message: MessageContent(text: "a&b=c d")), recipientField: "phone")
            #expect(result == ProviderResult(outcome: .success, httpStatus: 201, providerMessageID: "SM42"))
        }
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.target == "/2010-04-01/Accounts/AC1/Messages.json")
        #expect(request.header("Authorization") == "Basic " + Data("AC1:t".utf8).base64EncodedString())
        #expect(request.header("Accept") == "application/json")
        #expect(Fixtures.formDecode(request.bodyText).map(\.1) == ["+15551234567", "a&b=c d"])
    }

    @Test("429 with Retry-After is throttled and carries the delay")
    func rateLimited() async throws {
        let server = try LocalHTTPServer { _ in .json(429, #"{"error":"rate"}"#, headers: [("Retry-After", "3")]) }
        defer { server.stop() }
        let result = try await Fixtures.withRuntime { runtime in
            try await Fixtures.client(Fixtures.http(url: server.url("/x")), runtime: runtime).attempt(Fixtures.job(), recipientField: "email")
        }
        #expect(result == ProviderResult(outcome: .throttled, httpStatus: 429, error: #"HTTP 429: {"error":"rate"}"#, retryAfter: .seconds(3)))
    }

    @Test("a missing secret sends nothing")
    func missingSecretSendsNothing() async throws {
        let server = try LocalHTTPServer { _ in .json(200, "{}") }
        defer { server.stop() }
        let result = try await Fixtures.withRuntime { runtime in
            try await Fixtures.client(
                Fixtures.http(url: server.url("/x"), auth: .bearer(token: Fixtures.t("{{secrets.NOT_THERE}}"))), runtime: runtime
            ).attempt(Fixtures.job(), recipientField: "email")
        }
        #expect(result == ProviderResult(outcome: .permanentFailure, error: "secret NOT_THERE is not set"))
        #expect(server.requests.isEmpty)
    }

    @Test("connection refused is transient; the SSRF guard's refusal is permanent")
    func transportFailures() async throws {
        let server = try LocalHTTPServer { _ in .json(200, "{}") }
        let port = server.port
        server.stop()
        try await Task.sleep(for: .milliseconds(50))
        try await Fixtures.withRuntime { runtime in
            let open = try Fixtures.client(Fixtures.http(url: "http://127.0.0.1:\(port)/x"), runtime: runtime)
            let refused = await open.attempt(Fixtures.job(), recipientField: "email")
            #expect(refused.outcome == .transientFailure)
            #expect(refused.httpStatus == nil)

            let guarded = try ProviderClient(
                spec: Fixtures.http(url: "http://127.0.0.1:\(port)/x"), runtime: runtime, secrets: SecretResolver(environment: [:]),
                restrictToPublicAddresses: true, timeout: .seconds(5), logger: Fixtures.logger)
            let blocked = await guarded.attempt(Fixtures.job(), recipientField: "email")
            #expect(blocked.outcome == .permanentFailure)

            let whole = try Fixtures.client(Fixtures.http(url: "{{to.webhook_url}}"), runtime: runtime)
            let badScheme = await whole.attempt(Fixtures.job(to: ["webhook_url": "file:///etc/passwd"]), recipientField: "webhook_url")
            #expect(badScheme.outcome == .permanentFailure)
        }
    }
}
