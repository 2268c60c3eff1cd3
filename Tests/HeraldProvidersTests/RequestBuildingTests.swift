import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
import Testing

@Suite("Request building")
struct RequestBuildingTests {
    @Test("JSON body: template leaves are JSON strings, $value copies JSON, literals stay as written")
    func jsonBody() async throws {
        let body: HTTPProviderSpec.BodyValue = .object([
            .init(key: "text", value: .template(Fixtures.t("{{message.text}}"))),
            .init(key: "to", value: .template(Fixtures.t("{{to.phone}}"))),
            .init(key: "meta", value: .contextValue(path: "metadata")),
            .init(key: "missing", value: .contextValue(path: "data.nothing.here")),
            .init(key: "attempt", value: .contextValue(path: "attempt")),
            .init(key: "flags", value: .array([.literal(true), .literal(3), .literal(.string("x"))])),
            .init(key: "ids", value: .template(Fixtures.t("{{notification_id}}/{{delivery_id}}"))),
        ])
        let client = try Fixtures.client(Fixtures.http(url: "https://api.example.com/send", body: .json(body)))
        let job = Fixtures.job(
            to: ["phone": .string(Fixtures.hostile)], message: MessageContent(text: Fixtures.hostile),
            metadata: ["k": .string(Fixtures.hostile), "n": 1.5])
        let request = try await client.buildRequest(for: job, now: Fixtures.now)

        #expect(request.method == "POST")
        #expect(Fixtures.header(request, "Content-Type") == "application/json")
        let object = try Fixtures.jsonObject(request.body)
        #expect(object["text"] as? String == Fixtures.hostile)
        #expect(object["to"] as? String == Fixtures.hostile)
        let meta = try #require(object["meta"] as? [String: Any])
        #expect(meta["k"] as? String == Fixtures.hostile)
        #expect(meta["n"] as? Double == 1.5)
        #expect(object["missing"] is NSNull)
        #expect((object["attempt"] as? NSNumber)?.intValue == 1)
        let flags = try #require(object["flags"] as? [Any])
        #expect(flags.count == 3)
        #expect(flags[2] as? String == "x")
        #expect(object["ids"] as? String == "7c9e6679-7425-40de-944b-e07fc1f90ae7/0f8fad5b-d9cb-469f-a165-70867728950e")
        // Keys in the order written, and nothing a browser could read as markup.
        let text = String(decoding: request.body, as: UTF8.self)
        #expect(text.hasPrefix("{\"text\":"))
        #expect(!text.contains("</script>"))
    }

    @Test("JSON body: $if takes then when the value is present, else when not, and leaves a node without a branch out")
    func conditionalBody() async throws {
        let image: HTTPProviderSpec.BodyValue = .template(Fixtures.t("{{message.image_url}}"))
        let body: HTTPProviderSpec.BodyValue = .object([
            .init(key: "type", value: .conditional(path: "message.image_url", then: .literal("image"), else: .literal("text"))),
            .init(key: "photo", value: .conditional(path: "message.image_url", then: image, else: nil)),
            .init(key: "text", value: .conditional(path: "message.image_url", then: nil, else: .template(Fixtures.t("{{message.text}}")))),
            .init(key: "blocks", value: .array([
                .literal(.string("first")),
                .conditional(path: "message.image_url", then: .object([.init(key: "url", value: image)]), else: nil),
                // Nested: the inner $if decides once the outer one chose it.
                .conditional(path: "message.text", then: .conditional(path: "message.image_url", then: .literal(1), else: nil), else: nil),
            ])),
        ])
        let client = try Fixtures.client(Fixtures.http(url: "https://api.example.com/send", body: .json(body)))

        let withImage = try await client.buildRequest(
            for: Fixtures.job(message: MessageContent(text: "hi", imageURL: "https://cdn.example.com/a.png")), now: Fixtures.now)
        #expect(String(decoding: withImage.body, as: UTF8.self)
            == #"{"type":"image","photo":"https://cdn.example.com/a.png","blocks":["first",{"url":"https://cdn.example.com/a.png"},1]}"#)

        // Absent, and present but empty, are the same: no image.
        for message in [MessageContent(text: "hi"), MessageContent(text: "hi", imageURL: "")] {
            let without = try await client.buildRequest(for: Fixtures.job(message: message), now: Fixtures.now)
            #expect(String(decoding: without.body, as: UTF8.self) == #"{"type":"text","text":"hi","blocks":["first"]}"#)
        }
    }

    @Test("a Content-Type header from the configuration wins over the body's default")
    func contentTypeOverride() async throws {
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/send", headers: [("content-type", "application/vnd.api+json")],
                body: .json(.object([.init(key: "a", value: .literal(1))]))))
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        #expect(request.headers.filter { $0.name.lowercased() == "content-type" }.map(\.value) == ["application/vnd.api+json"])
    }

    @Test("form body: every value form-urlencoded and decodes back")
    func formBody() async throws {
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/Messages.json",
                body: .form([
                    .init(name: "To", value: Fixtures.t("{{to.phone}}")),
                    .init(name: "Body", value: Fixtures.t("{{message.text}}")),
                    .init(name: "Weird key&=", value: Fixtures.t("plain")),
                    .init(name: "Unicode", value: Fixtures.t("Привет {{to.phone}}")),
                ])))
        let job = Fixtures.job(to: ["phone": .string(Fixtures.hostile)], message: MessageContent(text: "1+1=2 & 50% off"))
        let request = try await client.buildRequest(for: job, now: Fixtures.now)
        #expect(Fixtures.header(request, "Content-Type") == "application/x-www-form-urlencoded")
        let text = String(decoding: request.body, as: UTF8.self)
        #expect(!text.contains(" ") && !text.contains("\n"))
        let fields = Fixtures.formDecode(text)
        #expect(fields.map(\.0) == ["To", "Body", "Weird key&=", "Unicode"])
        #expect(fields.map(\.1) == [Fixtures.hostile, "1+1=2 & 50% off", "plain", "Привет " + Fixtures.hostile])
    }

    @Test("text body: escaping follows the content type", arguments: [
        ("application/json", "{\"text\": \"{{message.text}}\"}"),
        ("text/html; charset=utf-8", "<p>{{message.text}}</p>"),
        ("text/plain", "{{message.text}}"),
    ])
    func textBody(contentType: String, template: String) async throws {
        let client = try Fixtures.client(
            Fixtures.http(url: "https://api.example.com/x", body: Fixtures.textBody(template, contentType: contentType)))
        let request = try await client.buildRequest(for: Fixtures.job(message: MessageContent(text: Fixtures.hostile)), now: Fixtures.now)
        #expect(Fixtures.header(request, "Content-Type") == contentType)
        let text = String(decoding: request.body, as: UTF8.self)
        switch contentType {
        case "application/json":
            #expect(try Fixtures.jsonObject(request.body)["text"] as? String == Fixtures.hostile)
        case "text/plain":
            #expect(text == Fixtures.hostile)
        default:
            #expect(!text.contains("</script>"))
            #expect(text.contains("&lt;/script&gt;"))
            #expect(text.hasPrefix("<p>") && text.hasSuffix("</p>"))
        }
    }

    @Test("URL values are percent-encoded: no new path segment, query or fragment")
    func urlEscaping() async throws {
        let client = try Fixtures.client(
            Fixtures.http(method: "GET", url: "https://api.example.com/users/{{to.user}}/messages?q={{to.user}}&lang=en"))
        let request = try await client.buildRequest(for: Fixtures.job(to: ["user": "x/../admin?y=1#frag &=+\"\\\n"]), now: Fixtures.now)
        let url = try #require(URLComponents(string: request.url))
        #expect(url.host == "api.example.com")
        #expect(url.percentEncodedPath == "/users/x%2F..%2Fadmin%3Fy%3D1%23frag%20%26%3D%2B%22%5C%0A/messages")
        #expect(url.percentEncodedPath.split(separator: "/").count == 3)
        #expect(url.fragment == nil)
        #expect(url.queryItems?.map(\.name) == ["q", "lang"])
        #expect(url.queryItems?.first?.value == "x/../admin?y=1#frag &=+\"\\\n")
    }

    @Test("a value that is exactly '..' can't climb the path")
    func dotSegment() async throws {
        let client = try Fixtures.client(Fixtures.http(url: "https://api.example.com/users/{{to.user}}/messages"))
        await #expect(throws: ProviderFailure.self) {
            _ = try await client.buildRequest(for: Fixtures.job(to: ["user": ".."]), now: Fixtures.now)
        }
        let result = await client.attempt(Fixtures.job(to: ["user": ".."]), recipientField: "user")
        #expect(result.outcome == .permanentFailure)
        #expect(result.error?.contains("path segment") == true)
    }

    @Test("a URL that is one value is taken whole")
    func singleValueURL() async throws {
        let client = try Fixtures.client(Fixtures.http(url: "{{to.webhook_url}}"))
        let target = "https://hooks.example.com/a/b?token=x%2Fy&z=1#frag"
        let request = try await client.buildRequest(for: Fixtures.job(to: ["webhook_url": .string(target)]), now: Fixtures.now)
        #expect(request.url == target)
    }

    @Test("header values lose CR and LF, so a value can't add a header")
    func headerInjection() async throws {
        let client = try Fixtures.client(
            Fixtures.http(url: "https://api.example.com/x", headers: [("X-Recipient", "id {{to.phone}}"), ("X-Static", "ok")]))
        let request = try await client.buildRequest(
            for: Fixtures.job(to: ["phone": "123\r\nX-Injected: yes\n\u{0}"]), now: Fixtures.now)
        #expect(Fixtures.header(request, "X-Recipient") == "id 123X-Injected: yes")
        #expect(Fixtures.header(request, "X-Injected") == nil)
        for field in request.headers {
            #expect(!field.value.contains("\r") && !field.value.contains("\n"))
        }
        #expect(request.restrictToPublicAddresses == false)
        #expect(request.timeout == .seconds(5))
    }

    @Test("secrets: resolved into the templates; a missing one is a permanent failure")
    func secrets() async throws {
        let spec = Fixtures.http(
            url: "https://api.example.com/{{secrets.ACCOUNT}}/send", headers: [("X-Key", "{{secrets.API_KEY}}")])
        let client = try Fixtures.client(spec, secrets: ["ACCOUNT": "AC1/2", "API_KEY": "k-1"])
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        #expect(request.url == "https://api.example.com/AC1%2F2/send")
        #expect(Fixtures.header(request, "X-Key") == "k-1")

        let missing = try Fixtures.client(spec, secrets: ["ACCOUNT": "AC1"])
        let failure = await #expect(throws: ProviderFailure.self) {
            _ = try await missing.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        }
        #expect(failure?.result == ProviderResult(outcome: .permanentFailure, error: "secret API_KEY is not set"))
    }

    @Test("'secrets.' in literal text is not a secret reference")
    func literalSecretsText() async throws {
        let client = try Fixtures.client(
            Fixtures.http(url: "https://secrets.example.com/v1/{{secrets.TOKEN}}", headers: [("X-Note", "see secrets.md")]),
            secrets: ["TOKEN": "t"])
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        #expect(request.url == "https://secrets.example.com/v1/t")
    }

    @Test("templates that switch escaping off are refused when compiled (at configuration load)")
    func refusesUnescaped() throws {
        #expect(throws: TemplateError.self) {
            _ = try CompiledTemplate(TemplateText("https://api.example.com/{{{to.phone}}}"), escaping: .url)
        }
    }
}
