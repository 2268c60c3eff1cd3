import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviderModel
import HeraldTemplating
import Testing

/// `sms:`, `receipts:`, `response.throttled`/`retry_after` and `rate_burst` in channel files.
@Suite struct ReceiptsAndSMSConfigTests {
    static func channel(provider extra: String, channel: String = "", response: String = "") -> String {
        """
        name: sms
        recipient: phone
        rate_limit: 12/m
        \(channel)
        providers:
          - name: kannel
            kind: http
            method: GET
            url: "http://kannel.test/cgi-bin/sendsms?to={{to.phone}}&text={{message.text}}&coding={{sms.coding}}"
        \(response)
        \(extra)

        """
    }

    @Test func theShippedChannelsDeclareWhatTheDefectsNeeded() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let snapshot = try ConfigLoader(directory: root.path).load().get()
        let kannel = try #require(snapshot.providers(for: "sms-kannel").first)
        #expect(kannel.sms == SMSProviderSettings(maxParts: 10, coding: [.gsm7: "0", .ucs2: "2"]))
        guard case .deliveryToken? = kannel.receipts?.verification else {
            Issue.record("sms-kannel checks the delivery token")
            return
        }
        #expect(kannel.receipts?.statuses["1"] == .delivered)
        #expect(kannel.receipts?.urlParameters.first == .init(name: "status", value: "%d"))
        let twilio = try #require(snapshot.providers(for: "sms-twilio").first)
        guard case .twilioSignature(let token)? = twilio.receipts?.verification else {
            Issue.record("sms-twilio verifies Twilio's signature")
            return
        }
        #expect(token.source.source == "{{secrets.TWILIO_AUTH_TOKEN}}")
        let matrix = try #require(snapshot.registry["matrix"])
        #expect(matrix.rateLimit == RateLimit(count: 12, per: .seconds(60), burst: 10))
        guard case .http(let http)? = snapshot.providers(for: "matrix").first?.transport else {
            Issue.record("matrix is http")
            return
        }
        #expect(http.response.throttled == StatusSet([429...429]))
        #expect(http.response.retryAfterField == .init(path: "retry_after_ms", milliseconds: true))
    }

    @Test func readsSMSReceiptsThrottlingAndBurst() throws {
        let directory = try ConfigDirectory(["channels.d/sms.yaml": Self.channel(
            provider: """
                    sms: {max_parts: 6, coding: {gsm7: "0", ucs2: "2"}}
                    receipts:
                      verify: standard_webhooks
                      secret: "{{secrets.RECEIPTS}}"
                      status: data.status
                      delivery_id: data.ref
                      statuses: {delivered: [DELIVRD], undelivered: [UNDELIV, REJECTD]}
                """,
            channel: "rate_burst: 10",
            response: """
                    response: {throttled: [429, 420], retry_after: {path: wait, unit: s}}
                """)])
        let snapshot = try directory.load().get()
        let channel = try #require(snapshot.registry["sms"])
        #expect(channel.rateLimit?.burst == 10)
        let provider = try #require(snapshot.providers(for: "sms").first)
        #expect(provider.sms?.maxParts == 6)
        #expect(provider.receipts?.statuses == ["DELIVRD": .delivered, "UNDELIV": .undelivered, "REJECTD": .undelivered])
        #expect(provider.receipts?.deliveryIDField == "data.ref")
        guard case .http(let http) = provider.transport else { return }
        #expect(http.response.throttled == StatusSet([429...429, 420...420]))
        #expect(http.response.retryAfterField == .init(path: "wait", milliseconds: false))
    }

    @Test func mistakesAreLocated() throws {
        let cases: [(String, String, String)] = [
            (Self.channel(provider: "    sms: {max_parts: 0}"), "max_parts must be between 1 and 255", ""),
            (Self.channel(provider: "    sms: {max_parts: 4, coding: {gsm8: x}}"), "gsm8", ""),
            (Self.channel(provider: "    receipts: {verify: magic, status: s, statuses: {delivered: [1]}}"), "verify must be one of", ""),
            (Self.channel(provider: "    receipts: {verify: twilio_signature, status: s, statuses: {delivered: [1]}}"), "missing required key 'secret'", ""),
            (Self.channel(provider: "    receipts: {verify: delivery_token, status: s, statuses: {delivered: [1], failed: [\"1\"]}}"),
             "already mapped", ""),
            (Self.channel(provider: "    receipts: {verify: delivery_token, status: s, url_parameters: {d: x}, statuses: {delivered: [1]}}"),
             "Herald's own callback parameter", ""),
            (Self.channel(provider: "    receipts: {verify: delivery_token, status: s, statuses: {}}"), "at least one provider status", ""),
            (Self.channel(provider: "", response: "    response: {retry_after: {path: x, unit: minutes}}"), "unit must be ms or s", ""),
        ]
        for (file, expected, _) in cases {
            let directory = try ConfigDirectory(["channels.d/sms.yaml": file])
            let errors = directory.errors()
            #expect(errors.contains { $0.contains(expected) && $0.hasPrefix("channels.d/sms.yaml:") }, "\(expected): \(errors)")
        }
        let burstAlone = try ConfigDirectory(["channels.d/sms.yaml": Self.channel(provider: "").replacingOccurrences(of: "rate_limit: 12/m", with: "rate_burst: 3")])
        #expect(burstAlone.errors().contains { $0.contains("rate_burst goes with rate_limit") })
    }
}
