import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviderModel
import HeraldTemplating
import Testing

@Suite struct WebPushConfigTests {
    @Test func theShippedChannelLoadsWithItsDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("channels.d/web-push.yaml"), encoding: .utf8)
        let directory = try ConfigDirectory(["channels.d/web-push.yaml": text])
        let snapshot = try directory.load().get()
        let channel = try #require(snapshot.registry["web-push"])
        #expect(channel.category == .push)
        #expect(channel.recipient == RecipientField(name: "web_push", format: .webPushSubscription))
        guard case .webPush(let push)? = snapshot.providers(for: "web-push").first?.transport else {
            Issue.record("expected a web_push provider, got \(snapshot.providers(for: "web-push").map(\.name))")
            return
        }
        #expect(push.ttl == .seconds(24 * 3600))
        #expect(push.urgency == .normal)
        #expect(push.topic == nil)
        #expect(push.recordSize == 4096)
        #expect(push.padTo == 0)
        #expect(push.tokenLifetime == .seconds(12 * 3600))
        #expect(push.privateKey.source.source == "{{secrets.WEB_PUSH_VAPID_PRIVATE_KEY}}")
        guard case .json = push.payload else {
            Issue.record("expected a JSON payload")
            return
        }
    }

    @Test func everyMistakeIsLocated() throws {
        let directory = try ConfigDirectory([
            "channels.d/push.yaml": """
                name: push
                recipient: web_push
                providers:
                  - name: a
                    kind: web_push
                    subject: ops@example.com
                    private_key: "{{secrets.KEY}}"
                    urgency: urgent
                    ttl: 1500ms
                    payload: {form: {a: b}}
                  - name: b
                    kind: web_push
                    subject: "mailto:ops@example.com"
                    private_key: "{{secrets.KEY}}"
                    payload: {text: "{{message.text}}", content_type: text/plain}
                    record_size: 100
                    pad_to: 90
                  - name: c
                    kind: web_push
                    subject: "mailto:ops@example.com"
                    payload: {json: {a: "{{{message.text}}}"}}
                    token_lifetime: 25h
                    topc: x

                """,
        ])
        #expect(directory.errors() == [
            "channels.d/push.yaml:6:14: subject must be a mailto: or https: URI (RFC 8292 §2.1), not 'ops@example.com'",
            "channels.d/push.yaml:10:14: payload takes json or text (with content_type); a service worker reads no form",
            "channels.d/push.yaml:9:10: ttl must be whole seconds (it is sent as the TTL header)",
            "channels.d/push.yaml:8:14: urgency must be one of: very-low, low, normal, high",
            "channels.d/push.yaml:17:13: pad_to 90 does not fit a record of 100 bytes (the delimiter and the 16-byte tag take 17)",
            "channels.d/push.yaml:23:5: unknown key 'topc' in a web_push provider (did you mean 'topic'?); expected one of: name, kind, subject, private_key, payload, ttl, urgency, topic, record_size, pad_to, token_lifetime",
            "channels.d/push.yaml:18:5: missing required key 'private_key' in a web_push provider",
            "channels.d/push.yaml:21:26: '{{{' switches escaping off and is not allowed; write '{{name}}': Herald escapes for the target",
            "channels.d/push.yaml:22:21: token_lifetime must be between 1m and 24h (RFC 8292 §2: exp at most 24 hours ahead)",
        ])
    }

    @Test func aSubscriptionIsCheckedAtAccept() throws {
        let registry = ChannelRegistry([
            ChannelDefinition(
                name: "web-push", category: .push, recipient: RecipientField(name: "web_push", format: .webPushSubscription),
                concurrency: 4, timeout: .seconds(5), retry: .standard),
        ])
        var validator = RequestValidator(registry: registry)
        validator.isRestrictedAddress = { $0 == "10.0.0.1" ? true : nil }
        func errors(_ subscription: JSONValue) -> [String] {
            let body: JSONValue = ["channel": "web-push", "to": ["web_push": subscription], "message": ["text": "hi"]]
            guard case .failure(let failure) = validator.validate(body) else { return [] }
            return failure.errors.map { "\($0.field): \($0.message)" }
        }
        let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        let good: JSONValue = ["endpoint": "https://push.example.net/x", "expirationTime": .null, "keys": ["p256dh": .string(p256dh), "auth": "BTBZMqHH6r4Tts7J_aSIgg"]]
        #expect(errors(good) == [])
        #expect(errors("https://push.example.net/x") == [
            "to.web_push: must be a push subscription object {endpoint, keys: {p256dh, auth}}, not string",
        ])
        #expect(errors(["endpoint": "http://push.example.net/x", "keys": ["p256dh": "AAAA", "auth": 5]]) == [
            "to.web_push.endpoint: must be an https:// push service URL",
            "to.web_push.keys.p256dh: must be base64url of an uncompressed P-256 public key (65 bytes)",
            "to.web_push.keys.auth: must be a string, not number",
        ])
        #expect(errors(["endpoint": "https://10.0.0.1/x", "keys": ["p256dh": .string(p256dh), "auth": "BTBZMqHH6r4Tts7J_aSIgg"]]) == [
            "to.web_push.endpoint: must name a public host: 10.0.0.1 is a loopback, private or otherwise non-public address",
        ])
        #expect(errors(["keys": "x"]) == ["to.web_push.endpoint: is required", "to.web_push.keys: must be an object, not string"])
        validator.allowPrivateTargets = true
        #expect(errors(["endpoint": "http://127.0.0.1:7100/x", "keys": ["p256dh": .string(p256dh), "auth": "BTBZMqHH6r4Tts7J_aSIgg"]]) == [])
    }
}
