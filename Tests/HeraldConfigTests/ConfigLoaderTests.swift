import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviderModel
import HeraldTemplating
import Testing

/// A throwaway configuration directory.
struct ConfigDirectory: ~Copyable {
    let path: String

    init(_ files: [String: String]) throws {
        path = NSTemporaryDirectory() + "herald-config-\(UUID().uuidString)"
        for (name, contents) in files {
            let file = (path as NSString).appendingPathComponent(name)
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try contents.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func load() -> Result<ConfigSnapshot, ConfigErrors> { ConfigLoader(directory: path).load() }

    func errors() -> [String] {
        guard case .failure(let errors) = load() else { return [] }
        return errors.errors.map(\.description)
    }
}

let goodChannel = """
    name: sms
    recipient: phone
    concurrency: 8
    rate_limit: 30/s
    retry: no-duplicates
    timeout: 5s
    providers:
      - name: twilio
        kind: http
        url: "https://api.twilio.com/2010-04-01/Accounts/{{secrets.SID}}/Messages.json"
        auth: {type: basic, username: "{{secrets.SID}}", password: "{{secrets.TOKEN}}"}
        body:
          form: {To: "{{to.phone}}", Body: "{{message.text}}"}
        response: {success: [200-299], transient: [429, 500-599], message_id: sid}

    """

let goodPolicies = """
    policies:
      no-duplicates: {max_attempts: 3, initial_delay: 2s, multiplier: 3, max_delay: 1m, retry_ambiguous: false}

    """

@Suite struct ConfigLoaderTests {
    @Test func loadsAGoodDirectory() throws {
        let directory = try ConfigDirectory([
            "channels.d/sms.yaml": goodChannel, "retry-policies.yaml": goodPolicies,
            "templates/hello.yaml": """
                id: hello
                default_locale: en
                locales:
                  en: {sms: {text: "Hello {{data.name}}"}}
                  ru: {sms: {text: "Привет, {{data.name}}"}}
                """,
            "routing.yaml": """
                rules:
                  - {name: rich, match: {data.amount: {$gt: 1000}}, channels: [sms], strategy: fallback}
                """,
        ])
        let snapshot = try directory.load().get()
        let sms = try #require(snapshot.registry["sms"])
        #expect(sms.category == .sms)
        #expect(sms.recipient == RecipientField(name: "phone", format: .phone))
        #expect(sms.rateLimit == RateLimit(count: 30, per: .seconds(1)))
        #expect(sms.retry.name == "no-duplicates")
        #expect(sms.retry.retryAmbiguous == false)
        #expect(sms.timeout == .seconds(5))
        #expect(snapshot.providers(for: "sms").map(\.name) == ["twilio"])
        guard case .http(let http)? = snapshot.providers(for: "sms").first?.transport else {
            Issue.record("expected an http provider")
            return
        }
        #expect(http.response.messageIDPath == "sid")
        #expect(http.response.transient.contains(503))
        #expect(!http.response.transient.contains(404))
        #expect(snapshot.templates["hello"]?.locale(for: "ru-RU") == "ru")
        #expect(snapshot.templates["hello"]?.locale(for: "de") == "en")
        #expect(snapshot.rules.map(\.name) == ["rich"])
        #expect(snapshot.version.count == 12)
    }

    @Test func theVersionFollowsTheFiles() throws {
        let first = try ConfigDirectory(["channels.d/sms.yaml": goodChannel, "retry-policies.yaml": goodPolicies])
        let same = try ConfigDirectory(["channels.d/sms.yaml": goodChannel, "retry-policies.yaml": goodPolicies])
        let other = try ConfigDirectory([
            "channels.d/sms.yaml": goodChannel.replacingOccurrences(of: "concurrency: 8", with: "concurrency: 9"),
            "retry-policies.yaml": goodPolicies,
        ])
        #expect(try first.load().get().version == same.load().get().version)
        #expect(try first.load().get().version != other.load().get().version)
    }

    @Test func namesFileLineAndColumnOfEachError() throws {
        let directory = try ConfigDirectory([
            "retry-policies.yaml": goodPolicies,
            "channels.d/a.yaml": """
                name: sms
                recipient: phone
                concurency: 8
                retry: never
                timeout: soon
                providers:
                  - name: twilio
                    kind: http
                    url: "https://x.test/{{{to.phone}}}"
                    body: {form: {To: "{{to.phone"}}

                """,
        ])
        #expect(directory.errors() == [
            "channels.d/a.yaml:3:1: unknown key 'concurency' in a channel (did you mean 'concurrency'?); expected one of: name, category, recipient, recipient_format, concurrency, rate_limit, rate_burst, retry, timeout, providers, max_in_flight_per_host, settings, breaker",
            "channels.d/a.yaml:5:10: timeout must be a duration such as 250ms, 10s, 5m or 1h",
            "channels.d/a.yaml:4:8: unknown retry policy 'never'; defined: no-duplicates, standard",
            "channels.d/a.yaml:9:26: '{{{' switches escaping off and is not allowed; write '{{name}}': Herald escapes for the target",
            "channels.d/a.yaml:10:24: this '{{' tag is not closed with '}}'",
        ])
    }

    @Test func yamlSyntaxErrorsAndDuplicatesAreLocated() throws {
        let directory = try ConfigDirectory([
            "channels.d/broken.yaml": "name: sms\nrecipient: [phone\n",
            "channels.d/one.yaml": goodChannel.replacingOccurrences(of: "retry: no-duplicates\n", with: ""),
            "channels.d/two.yaml": goodChannel.replacingOccurrences(of: "retry: no-duplicates\n", with: ""),
            "channels.d/dupkey.yaml": "name: x\nname: y\n",
        ])
        let errors = directory.errors()
        #expect(errors.count == 3)
        #expect(errors.contains { $0.hasPrefix("channels.d/broken.yaml:3:1: YAML syntax error") })
        #expect(errors.contains { $0.hasPrefix("channels.d/dupkey.yaml:") && $0.contains("duplicate key 'name'") })
        #expect(errors.contains("channels.d/two.yaml:1:7: channel 'sms' is already defined at channels.d/one.yaml:1:7"))
    }

    @Test func referencesMustResolve() throws {
        let directory = try ConfigDirectory([
            "channels.d/sms.yaml": goodChannel, "retry-policies.yaml": goodPolicies,
            "routing.yaml": """
                rules:
                  - name: r
                    match: {data.amount: {$gtx: 1}}
                    channels: [sms, pigeon]
                    strategy: sometimes

                """,
            "templates/t.yaml": """
                id: t
                default_locale: de
                locales:
                  en: {sms: {text: hi, subject: nope}}

                """,
        ])
        #expect(directory.errors() == [
            "templates/t.yaml:4:24: unknown key 'subject' in the sms part of locale 'en'; expected one of: text, text_file, image_url",
            "templates/t.yaml:2:17: default_locale 'de' is not one of the locales: en",
            "routing.yaml:3:12: invalid match filter: invalid filter at data.amount.$gtx: unknown operator '$gtx'",
            "routing.yaml:4:21: unknown channel 'pigeon'; defined: sms",
            "routing.yaml:5:15: strategy must be 'all' or 'fallback', not 'sometimes'",
        ])
    }

    @Test func aMinimalChannelGetsTheDefaults() throws {
        let directory = try ConfigDirectory([
            "channels.d/hook.yaml": """
                name: hook
                recipient: webhook_url
                providers:
                  - {name: receiver, kind: http, url: "{{to.webhook_url}}", body: {json: {text: "{{message.text}}"}}}

                """,
        ])
        let snapshot = try directory.load().get()
        let hook = try #require(snapshot.registry["hook"])
        #expect(hook.category == .webhook)
        #expect(hook.recipient.format == .url)
        #expect(hook.concurrency == 16)
        #expect(hook.rateLimit == nil)
        #expect(hook.timeout == .seconds(15))
        #expect(hook.retry == .standard)
        guard case .http(let http)? = snapshot.providers(for: "hook").first?.transport else {
            Issue.record("expected the http provider, got \(snapshot.providers(for: "hook").map(\.name))")
            return
        }
        #expect(http.method == "POST")
        #expect(http.auth == nil)
        #expect(http.url.source.source == "{{to.webhook_url}}")
        // Compiled at load, once, with the escaping of where each value lands: the snapshot carries it.
        #expect(http.urlIsSingleValue)
        #expect(http.url.escaping == .text)
        guard case .json(.object(let members))? = http.body, case .template(let text)? = members.first?.value else {
            Issue.record("expected a json body with a template")
            return
        }
        #expect(text.escaping == .text)
    }

    /// A directory with one channel `hook` whose one provider is `provider` (YAML flow mapping).
    static func hook(provider: String) throws -> ConfigDirectory {
        try ConfigDirectory(["channels.d/hook.yaml": "name: hook\nrecipient: webhook_url\nproviders:\n  - \(provider)\n"])
    }

    /// The loader and the request builder once had two copies of this rule, and they disagreed on
    /// `application/…+json` (validated as plain text, sent as JSON). Now the template is compiled once,
    /// by the loader, with `Escaping(contentType:)`.
    @Test("body.text: the escaping follows the content type", arguments: [
        ("application/json", Escaping.jsonString), ("application/vnd.api+json", .jsonString), ("Application/JSON; charset=utf-8", .jsonString),
        ("text/html; charset=utf-8", .html), ("text/plain", .text), ("application/xml", .text),
    ])
    func textBodyEscaping(contentType: String, escaping: Escaping) throws {
        let directory = try Self.hook(provider: """
            {name: receiver, kind: http, url: "https://api.example.com/in", body: {text: "x {{message.text}}", content_type: "\(contentType)"}}
            """)
        guard case .http(let http)? = try directory.load().get().providers(for: "hook").first?.transport,
            case .text(let template, let type)? = http.body
        else {
            Issue.record("expected a text body")
            return
        }
        #expect(type == contentType)
        #expect(template.escaping == escaping)
    }

    @Test("url: one value alone is taken whole, values inside a written URL are percent-encoded", arguments: [
        ("{{to.webhook_url}}", Escaping.text), (" {{ to.webhook_url }} ", .text), ("https://api.example.com/{{to.id}}", .url),
        ("{{to.base}}/{{to.path}}", .url),
    ])
    func urlEscaping(url: String, escaping: Escaping) throws {
        let directory = try Self.hook(provider: #"{name: receiver, kind: http, url: "\#(url)"}"#)
        let result = directory.load()
        if escaping == .url, !url.hasPrefix("https://") {
            #expect(directory.errors().contains { $0.contains("url must start with https://") })
            return
        }
        guard case .http(let http)? = try result.get().providers(for: "hook").first?.transport else {
            Issue.record("expected an http provider")
            return
        }
        #expect(http.url.escaping == escaping)
    }

    @Test func everySecretAProviderUsesIsFoundWhereverItIs() throws {
        let directory = try ConfigDirectory([
            "channels.d/hook.yaml": """
                name: hook
                recipient: webhook_url
                providers:
                  - name: receiver
                    kind: http
                    url: "https://{{secrets.HOST}}/in"
                    headers: {X-Key: "{{secrets.HEADER_KEY}}"}
                    auth: {type: hmac, header: X-Sig, secret: "{{secrets.HMAC}}", signed: "{{timestamp}}.{{body}}"}
                    body: {json: {a: [{b: {$value: secrets.COPIED}}], c: "{{#secrets.SECTION}}x{{/secrets.SECTION}}", d: "https://secrets.example.com/"}}

                """,
        ])
        let provider = try #require(try directory.load().get().providers(for: "hook").first)
        #expect(provider.secretNames == ["COPIED", "HEADER_KEY", "HMAC", "HOST", "SECTION"])
    }

    @Test func aConditionalBodyNodeNeedsABranchAndNoOtherKeys() throws {
        let directory = try ConfigDirectory([
            "channels.d/hook.yaml": """
                name: hook
                recipient: webhook_url
                providers:
                  - name: receiver
                    kind: http
                    url: "https://example.com/in"
                    body:
                      json:
                        image: {$if: message.image_url}
                        photo: {$if: message.image_url, then: "{{message.image_url}}", otherwise: x}
                        good: {$if: message.image_url, then: [{url: "{{message.image_url}}"}], else: {$value: data.fallback}}

                """,
        ])
        #expect(directory.errors() == [
            "channels.d/hook.yaml:9:16: $if needs then, else or both",
            "channels.d/hook.yaml:10:72: unknown key 'otherwise' in a $if object; expected one of: $if, then, else",
        ])
    }

    @Test func aMissingDirectoryPartIsEmptyNotAnError() throws {
        let directory = try ConfigDirectory([:])
        let snapshot = try directory.load().get()
        #expect(snapshot.registry.names.isEmpty)
        #expect(snapshot.policies.keys.sorted() == ["standard"])
    }
}
