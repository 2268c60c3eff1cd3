import Foundation
import HeraldConfig
import HeraldCore
import HeraldTemplating
import Testing

@Suite struct EscapingTests {
    static let hostile = "\"}, \"admin\": true, {\"x\": \"</script><script>alert(1)</script>&amp;\n\\ ?a=b#frag /../"

    func render(_ source: String, _ escaping: Escaping) throws -> String {
        try CompiledTemplate(TemplateText(source), escaping: escaping)
            .render(RenderContext(["data": ["name": .string(Self.hostile)]]))
    }

    @Test func jsonStringsStayOneString() throws {
        let body = try render(#"{"text": "{{data.name}}"}"#, .jsonString)
        let parsed = try JSONDecoder().decode(JSONValue.self, from: Data(body.utf8))
        #expect(parsed == ["text": .string(Self.hostile)])
        #expect(!body.contains("</script>"))  // escaped as \u003c too, so it is safe inside HTML
    }

    @Test func htmlIsEscaped() throws {
        let html = try render("<p>{{data.name}}</p>", .html)
        #expect(!html.contains("<script>"))
        #expect(html.contains("&lt;/script&gt;&lt;script&gt;"))
        #expect(html.contains("&amp;amp;"))
    }

    @Test func urlValuesArePercentEncoded() throws {
        let url = try render("https://api.example.com/v1/users/{{data.name}}/messages", .url)
        let components = try #require(URLComponents(string: url))
        #expect(components.host == "api.example.com")
        #expect(components.query == nil)
        #expect(components.fragment == nil)
        #expect(components.path.hasPrefix("/v1/users/") && components.path.hasSuffix("/messages"))
        #expect(components.percentEncodedPath.split(separator: "/").count == 4)
    }

    @Test func headersLoseLineBreaks() throws {
        let header = try render("Bearer {{data.name}}", .header)
        #expect(!header.contains("\n") && !header.contains("\r"))
    }

    @Test func escapingCannotBeSwitchedOff() {
        for source in ["{{{data.name}}}", "{{& data.name}}", "{{> partial}}", "{{%CONTENT_TYPE: TEXT}}"] {
            #expect(throws: TemplateError.self) { try CompiledTemplate(TemplateText(source), escaping: .html) }
        }
    }

    @Test func secretsAreFoundOnlyInTags() throws {
        let template = try CompiledTemplate(
            TemplateText("https://secrets.example.com/{{secrets.API_KEY}}/{{#secrets.FLAG}}x{{/secrets.FLAG}}"), escaping: .url)
        #expect(template.secretNames == ["API_KEY", "FLAG"])
    }
}

@Suite struct RoutingAndPlanningTests {
    func snapshot() throws -> ConfigSnapshot {
        let directory = try ConfigDirectory([
            "channels.d/sms.yaml": goodChannel, "retry-policies.yaml": goodPolicies,
            "channels.d/email.yaml": """
                name: email
                recipient: email
                providers:
                  - {name: relay, kind: smtp, url: "smtp://127.0.0.1:2525", starttls: none, from: "Herald <h@example.com>"}

                """,
            "templates/alert.yaml": """
                id: alert
                default_locale: en
                locales:
                  en:
                    sms: {text: "Alert: {{data.event}} {{data.amount}}"}
                    email: {subject: "Alert: {{data.event}}", html: "<b>{{data.event}}</b>"}
                  ru:
                    sms: {text: "Внимание: {{data.event}}"}

                """,
            "routing.yaml": """
                rules:
                  - name: big
                    match: {template: alert, data.amount: {$gt: 1000}, to.phone: {$exists: true}}
                    channels: [sms, email]
                    strategy: fallback
                  - name: rest
                    match: {}
                    channels: [email]

                """,
        ])
        return try directory.load().get()
    }

    func plan(_ snapshot: ConfigSnapshot, _ body: JSONValue) throws -> DeliveryPlan {
        try snapshot.plan(try snapshot.validator.validate(body).get()).get()
    }

    @Test func theFirstMatchingRuleWins() throws {
        let snapshot = try snapshot()
        let big = try plan(snapshot, [
            "template": "alert", "data": ["event": "card payment", "amount": 5000],
            "to": ["phone": "+15551234567", "email": "a@example.com", "locale": "ru-RU"],
        ])
        #expect(big.rule == "big")
        #expect(big.strategy == .fallback)
        #expect(big.channels == ["sms", "email"])
        #expect(big.messages["sms"]?.text == "Внимание: card payment")
        // ru has no e-mail part: the default locale's is used.
        #expect(big.messages["email"]?.subject == "Alert: card payment")
        #expect(big.messages["email"]?.html == "<b>card payment</b>")
        // The locale each message was rendered in is what the delivery stores and GET shows.
        #expect(big.locales == ["sms": "ru", "email": "en"])

        let small = try plan(snapshot, [
            "template": "alert", "data": ["event": "<login>", "amount": 5], "to": ["email": "a@example.com"],
        ])
        #expect(small.rule == "rest")
        #expect(small.channels == ["email"])
        #expect(small.messages["email"]?.html == "<b>&lt;login&gt;</b>")
        #expect(small.locales == ["email": "en"])
    }

    @Test func aFallbackSkipsChannelsTheRecipientCannotUse() throws {
        let snapshot = try snapshot()
        // No phone: the big rule doesn't match ($exists), so the rest rule applies.
        let planned = try plan(snapshot, ["template": "alert", "data": ["event": "x", "amount": 5000], "to": ["email": "a@example.com"]])
        #expect(planned.rule == "rest")
    }

    @Test func namedChannelsSkipTheRules() throws {
        let snapshot = try snapshot()
        let planned = try plan(snapshot, ["channel": "sms", "to": ["phone": "+15551234567"], "message": ["text": "hi"]])
        #expect(planned.rule == nil)
        #expect(planned.channels == ["sms"])
        #expect(planned.messages["sms"]?.text == "hi")
    }

    @Test func aRoutedRecipientWithoutTheAddressIsRefusedPrecisely() throws {
        let snapshot = try snapshot()
        let request = try snapshot.validator.validate(["message": ["text": "hi"], "to": ["phone": "+15551234567"]]).get()
        guard case .failure(let failure) = snapshot.plan(request) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(failure.errors == [FieldError(field: "to.email", message: "is required by channel 'email'")])
    }

    @Test func unknownTemplatesAreRefused() throws {
        let snapshot = try snapshot()
        guard case .failure(let failure) = snapshot.validator.validate(["template": "nope", "to": ["email": "a@example.com"]]) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(failure.errors.map(\.field) == ["template"])
    }
}
