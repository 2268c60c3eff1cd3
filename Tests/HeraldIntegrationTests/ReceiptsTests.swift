import Foundation
import HeraldCore
import HeraldProviders
import Testing

/// Status callbacks through the real gateway: the shipped `sms-twilio` channel sends to the Twilio
/// stand-in (its request checked against Twilio's OpenAPI contract) with `StatusCallback` set to the
/// delivery's receipt URL; the callback is then signed by Twilio's own Python library (`twilio`'s
/// `RequestValidator`), an independent implementation of `X-Twilio-Signature`. A Standard Webhooks
/// report is signed by the `standardwebhooks` library.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ReceiptsTests {
    static let authToken = "itest-twilio-auth-token"

    static func withTwilio(_ body: @Sendable (PeerHarness, StandinProcess) async throws -> Void) async throws {
        let standin = try await StandinProcess.start(python: ProviderHarness.python, specs: ProviderHarness.specsDirectory)
        do {
            let secrets = [
                "TWILIO_ACCOUNT_SID": "AC" + String(repeating: "0123456789abcdef", count: 2), "TWILIO_AUTH_TOKEN": authToken,
                "TWILIO_FROM": "+15005550006",
                "RECEIPTS_SECRET": "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString(),
            ]
            let twilio = PeerHarness.Channel(file: "sms-twilio.yaml", replacing: [("https://api.twilio.com", "\(standin.baseURL)/twilio")])
            // The generic signed form: the same provider, reporting with Standard Webhooks and echoing the delivery id.
            var signed = twilio
            signed.rename = "sms-signed"
            signed.replacing += [
                ("verify: twilio_signature                # X-Twilio-Signature, HMAC-SHA1 with the auth token", "verify: standard_webhooks"),
                ("secret: \"{{secrets.TWILIO_AUTH_TOKEN}}\"\n      status: MessageStatus", "secret: \"{{secrets.RECEIPTS_SECRET}}\"\n      status: data.status"),
                ("message_id: MessageSid", "delivery_id: data.delivery_id"), ("detail: ErrorCode", "detail: data.reason"),
            ]
            try await PeerHarness.with(channels: [twilio, signed], secrets: secrets) { harness in try await body(harness, standin) }
        } catch {
            await standin.stop()
            throw error
        }
        await standin.stop()
    }

    /// Sends one SMS and returns its delivery id and the `StatusCallback` Twilio was given.
    static func sendOne(_ harness: PeerHarness, _ standin: StandinProcess, channel: String, phone: String) async throws
        -> (notification: String, delivery: String, callback: String, sid: String)
    {
        let id = try await harness.accepted([
            "channel": .string(harness.channel(channel)), "to": ["phone": .string(phone)], "message": ["text": "Your code is 1234"],
        ])
        let sent = try await harness.wait(id: id, for: ["sent"])
        let delivery = try #require(sent.value(atPath: "deliveries.0.id")?.stringValue)
        let record = try #require(try await standin.requests().first { $0.provider == "twilio" && $0.form["To"] == phone })
        #expect(record.valid, "\(record.violations)")
        let callback = try #require(record.form["StatusCallback"])
        let sid = try #require(sent.value(atPath: "deliveries.0.provider_message_id")?.stringValue)
        return (id, delivery, callback, sid)
    }

    /// `X-Twilio-Signature` as Twilio's library computes it.
    static func twilioSignature(url: String, form: [(String, String)], token: String) async throws -> String {
        let parameters = JSONWriter.string(.object(Dictionary(uniqueKeysWithValues: form.map { ($0.0, JSONValue.string($0.1)) })))
        return try await runPython(
            "import json, sys\nfrom twilio.request_validator import RequestValidator\n"
                + "print(RequestValidator(sys.argv[1]).compute_signature(sys.argv[2], json.loads(sys.argv[3])))",
            [token, url, parameters])
    }

    static func form(_ fields: [(String, String)]) -> String { ProviderEncoding.formBody(fields.map { (name: $0.0, value: $0.1) }) }

    @Test func aTwilioCallbackWithABadSignatureIsRefusedAndAGoodOneMakesItDelivered() async throws {
        try await Self.withTwilio { harness, standin in
            let sent = try await Self.sendOne(harness, standin, channel: "sms-twilio", phone: "+15550107001")
            let expected = harness.links.url(
                channel: harness.channel("sms-twilio"), provider: "twilio", deliveryID: UUID(uuidString: sent.delivery)!)
            #expect(sent.callback == expected)
            let components = try #require(URLComponents(string: sent.callback))
            let pathAndQuery = components.percentEncodedPath + "?" + (components.percentEncodedQuery ?? "")
            let fields: [(String, String)] = [
                ("AccountSid", "AC" + String(repeating: "0123456789abcdef", count: 2)), ("MessageSid", sent.sid),
                ("MessageStatus", "delivered"), ("To", "+15550107001"), ("ApiVersion", "2010-04-01"),
            ]
            let good = try await Self.twilioSignature(url: sent.callback, form: fields, token: Self.authToken)
            let formHeaders = ["Content-Type": "application/x-www-form-urlencoded"]

            // Signed with another auth token, or a parameter changed after signing: 403 problem, nothing recorded.
            let wrongKey = try await Self.twilioSignature(url: sent.callback, form: fields, token: "not-the-auth-token")
            let refused = try await harness.receipt(
                pathAndQuery, headers: formHeaders.merging(["X-Twilio-Signature": wrongKey]) { $1 }, body: Self.form(fields))
            #expect(refused.status == 403)
            #expect(refused.contentType == "application/problem+json")
            #expect(refused.body["type"] == "https://herald.dev/problems/receipt-not-verified")
            var tampered = fields
            tampered[2].1 = "undelivered"
            let changed = try await harness.receipt(
                pathAndQuery, headers: formHeaders.merging(["X-Twilio-Signature": good]) { $1 }, body: Self.form(tampered))
            #expect(changed.status == 403)
            let unsigned = try await harness.receipt(pathAndQuery, headers: formHeaders, body: Self.form(fields))
            #expect(unsigned.status == 403)
            #expect(try await harness.document(id: sent.notification).value(atPath: "deliveries.0.status") == "sent")

            // Signed by Twilio's library with the account's token: delivered, with the event in the history.
            let accepted = try await harness.receipt(
                pathAndQuery, headers: formHeaders.merging(["X-Twilio-Signature": good]) { $1 }, body: Self.form(fields))
            #expect(accepted.status == 200, "\(accepted.body)")
            #expect(accepted.body["status"] == "delivered")
            #expect(accepted.body["changed"] == true)
            let document = try await harness.document(id: sent.notification)
            #expect(document.value(atPath: "deliveries.0.status") == "delivered")
            #expect(document["status"] == "delivered")
            let events = document.value(atPath: "deliveries.0.events")?.arrayValue ?? []
            #expect(events.count == 1)
            #expect(events.first?["provider_status"] == "delivered")
            #expect(events.first?["previous_status"] == "sent")
            #expect(events.first?["provider_message_id"] == .string(sent.sid))

            // The same callback again, and a late "sent": 200, recorded once / recorded, status stays.
            let duplicate = try await harness.receipt(
                pathAndQuery, headers: formHeaders.merging(["X-Twilio-Signature": good]) { $1 }, body: Self.form(fields))
            #expect(duplicate.status == 200)
            #expect(duplicate.body["duplicate"] == true)
            var late = fields
            late[2].1 = "sent"
            let lateSignature = try await Self.twilioSignature(url: sent.callback, form: late, token: Self.authToken)
            let lateAnswer = try await harness.receipt(
                pathAndQuery, headers: formHeaders.merging(["X-Twilio-Signature": lateSignature]) { $1 }, body: Self.form(late))
            #expect(lateAnswer.status == 200)
            #expect(lateAnswer.body["status"] == "delivered")
            let final = try await harness.document(id: sent.notification)
            #expect(final.value(atPath: "deliveries.0.status") == "delivered")
            #expect(final.value(atPath: "deliveries.0.events")?.arrayValue?.map { $0["provider_status"] } == ["delivered", "sent"])
        }
    }

    @Test func aStandardWebhooksReportSignedByTheReferenceLibraryMovesItOnAndATamperedOneIsRefused() async throws {
        try await Self.withTwilio { harness, standin in
            let sent = try await Self.sendOne(harness, standin, channel: "sms-signed", phone: "+15550107002")
            let path = "/v1/receipts/\(harness.channel("sms-signed"))/twilio"
            let body = #"{"type":"message.status","data":{"delivery_id":"\#(sent.delivery)","status":"undelivered","reason":"30003 unreachable"}}"#
            // Sign with the standardwebhooks library, as a provider using it would.
            let signedHeaders = try await runPython(
                "import json, sys, time\nfrom standardwebhooks.webhooks import Webhook\nfrom datetime import datetime, timezone\n"
                    + "now = datetime.now(tz=timezone.utc)\n"
                    + "print(json.dumps({'webhook-id': 'msg_itest', 'webhook-timestamp': str(int(now.timestamp())),"
                    + " 'webhook-signature': Webhook(sys.argv[1]).sign('msg_itest', now, sys.argv[2])}))",
                [harness.secret("RECEIPTS_SECRET"), body])
            let headers = try JSONDecoder().decode([String: String].self, from: Data(signedHeaders.utf8))
                .merging(["Content-Type": "application/json"]) { $1 }
            let tampered = try await harness.receipt(
                path, headers: headers, body: body.replacingOccurrences(of: "undelivered", with: "delivered"))
            #expect(tampered.status == 403)
            let accepted = try await harness.receipt(path, headers: headers, body: body)
            #expect(accepted.status == 200, "\(accepted.body)")
            let document = try await harness.document(id: sent.notification)
            #expect(document.value(atPath: "deliveries.0.status") == "undelivered")
            #expect(document.value(atPath: "deliveries.0.events.0.detail") == "30003 unreachable")
            #expect(document.value(atPath: "deliveries.0.last_error")?.stringValue?.contains("30003 unreachable") == true)
        }
    }
}
