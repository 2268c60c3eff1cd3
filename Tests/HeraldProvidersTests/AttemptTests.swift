import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
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

    @Test("upload: the media is fetched, uploaded with the provider's auth, and its URI sent; failures end the attempt as they should")
    func mediaUpload() async throws {
        let image = [UInt8](repeating: 0x89, count: 600)
        let server = try LocalHTTPServer { request in
            switch request.target {
            case "/img/pic%20one.png": CannedResponse(status: 200, headers: [("Content-Type", "image/png")], body: image)
            case "/img/missing.png": .json(404, "{}")
            case "/img/down.png": .json(503, "{}")
            case "/img/big.png": CannedResponse(status: 200, headers: [("Content-Type", "image/png")], body: image + image)
            case "/img/odd.png": CannedResponse(status: 200, headers: [("Content-Type", "image/png")], body: image)
            case let target where target.hasPrefix("/upload"):
                request.bodyText.isEmpty ? .json(400, "{}") : .json(200, #"{"content_uri":"mxc://example.org/abc"}"#)
            default: .json(200, #"{"event_id":"$1"}"#)
            }
        }
        defer { server.stop() }
        let upload = HTTPProviderSpec.MediaUpload(
            when: "message.image_url", fetch: Fixtures.t("{{message.image_url}}", .url(for: TemplateText("{{message.image_url}}"))),
            maxBytes: 1000, method: "POST", url: Fixtures.t(server.url("/upload?filename={{upload.filename}}"), .url(for: TemplateText("x{{y}}"))),
            resultPath: "content_uri", response: .init())
        var spec = Fixtures.http(
            url: server.url("/send"),
            body: .json(.object([
                .init(key: "url", value: .conditional(path: "upload.result", then: .template(Fixtures.t("{{upload.result}}")), else: nil)),
                .init(key: "size", value: .contextValue(path: "upload.size")),
            ])),
            auth: .bearer(token: Fixtures.t("{{secrets.TOKEN}}")), response: .init(messageIDPath: "event_id"))
        guard case .http(var http) = spec.transport else { return }
        http.upload = upload
        spec = ProviderSpec(name: spec.name, transport: .http(http))

        try await Fixtures.withRuntime { runtime in
            let client = try Fixtures.client(spec, runtime: runtime, secrets: ["TOKEN": "tok"])
            func attempt(_ imageURL: String?) async -> ProviderResult {
                await client.attempt(Fixtures.job(message: MessageContent(text: "hi", imageURL: imageURL)), recipientField: "email")
            }
            let sent = await attempt(server.url("/img/pic%20one.png"))
            #expect(sent == ProviderResult(outcome: .success, httpStatus: 200, providerMessageID: "$1"))
            let uploadRequest = try #require(server.requests.first { $0.target.hasPrefix("/upload") })
            #expect(uploadRequest.target == "/upload?filename=pic%20one.png")
            #expect(uploadRequest.body == image)
            #expect(uploadRequest.header("Content-Type") == "image/png")
            #expect(uploadRequest.header("Authorization") == "Bearer tok")
            #expect(server.requests.last?.bodyText == #"{"url":"mxc://example.org/abc","size":600}"#)

            // No image: no fetch, no upload, the send without the node.
            let before = server.requests.count
            #expect(await attempt(nil).outcome == .success)
            #expect(server.requests.count == before + 1)
            #expect(server.requests.last?.bodyText == #"{"size":null}"#)

            let missing = await attempt(server.url("/img/missing.png"))
            #expect(missing.outcome == .permanentFailure)
            #expect(missing.error == "fetching the media: the URL answered HTTP 404")
            #expect(await attempt(server.url("/img/down.png")).outcome == .transientFailure)
            let big = await attempt(server.url("/img/big.png"))
            #expect(big.outcome == .permanentFailure)
            #expect(big.error == "fetching the media: it is over max_bytes (1000 bytes)")
        }

        // The SSRF guard applies to the fetch: a loopback image is refused when only public addresses are allowed.
        try await Fixtures.withRuntime { runtime in
            let guarded = ProviderClient(
                spec: spec, runtime: runtime, secrets: SecretResolver(environment: ["TOKEN": "tok"], secretsDirectory: "/nonexistent"),
                restrictToPublicAddresses: true, timeout: .seconds(5), logger: Fixtures.logger)
            let refused = await guarded.attempt(
                Fixtures.job(message: MessageContent(text: "hi", imageURL: server.url("/img/odd.png"))), recipientField: "email")
            #expect(refused.outcome == .permanentFailure)
            #expect(refused.error?.hasPrefix("fetching the media: ") == true)
        }
        #expect(!server.requests.contains { $0.target == "/img/odd.png" })
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
