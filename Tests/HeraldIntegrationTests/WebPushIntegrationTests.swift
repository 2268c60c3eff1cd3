import Foundation
import HeraldCore
import Testing

/// The shipped `web-push` channel end to end (gateway → PostgreSQL → RabbitMQ → worker → libcurl) to
/// the stand-in push service in `Tests/standins/provider_standin.py`, which plays the browser too: it
/// made the subscription, so it holds the private key and decrypts the payload with `http_ece`, and it
/// verifies the VAPID token with `py_vapid` — implementations independent of Herald's.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct WebPushIntegrationTests {
    @Test func aPushMessageIsDecryptedByAnIndependentImplementation() async throws {
        try await ProviderHarness.with { harness in
            let subscription = try await harness.standin.subscribe()
            let id = try await harness.post(channel: "web-push", to: ["web_push": subscription])
            let final = try await harness.waitForTerminal(id: id)
            #expect(final.value(atPath: "deliveries.0.status") == "sent", "\(final.value(atPath: "deliveries.0") ?? .null)")
            #expect(final.value(atPath: "deliveries.0.attempts")?.arrayValue?.count == 1)

            let records = try await harness.standin.requests().filter { $0.provider == "webpush" }
            try #require(records.count == 1)
            let record = records[0]
            #expect(record.valid, "\(record.violations)")
            #expect(record.status == 201)
            let payload = try JSONDecoder().decode(JSONValue.self, from: Data(try #require(record.decrypted).utf8))
            #expect(payload["title"]?.stringValue == ProviderContractTests.hostileSubject)
            #expect(payload["body"]?.stringValue == ProviderContractTests.hostileText)
            #expect(payload["notification_id"]?.stringValue == id)
            // The push service's Location (the message resource) is the provider's message id.
            let messageID = try #require(final.value(atPath: "deliveries.0.provider_message_id")?.stringValue)
            #expect(messageID.hasPrefix("\(harness.standin.baseURL)/webpush/message/"))
        }
    }

    @Test func aGoneSubscriptionFailsAtOnceAndABusyPushServiceIsRetried() async throws {
        try await ProviderHarness.with { harness in
            // 410 Gone: the browser unsubscribed. Permanent, one attempt, the error says to delete it.
            try await harness.standin.script(provider: "webpush", statuses: [410])
            let gone = try await harness.waitForTerminal(
                id: try await harness.post(channel: "web-push", to: ["web_push": try await harness.standin.subscribe()]))
            #expect(gone.value(atPath: "deliveries.0.status") == "failed")
            let goneAttempts = try #require(gone.value(atPath: "deliveries.0.attempts")?.arrayValue)
            #expect(goneAttempts.map { $0["outcome"] } == ["permanent_failure"])
            #expect(goneAttempts.first?["http_status"] == 410)
            #expect(goneAttempts.first?["error"]?.stringValue?.contains("subscription is gone") == true)

            // 503, then accepted: a transient failure, retried.
            try await harness.standin.script(provider: "webpush", statuses: [503])
            let retried = try await harness.waitForTerminal(
                id: try await harness.post(channel: "web-push", to: ["web_push": try await harness.standin.subscribe()]))
            #expect(retried.value(atPath: "deliveries.0.status") == "sent")
            let attempts = try #require(retried.value(atPath: "deliveries.0.attempts")?.arrayValue)
            #expect(attempts.map { $0["outcome"] } == ["transient_failure", "success"])
            #expect(attempts.map { $0["http_status"] } == [503, 201])

            // Every request, the scripted ones too, carried a valid VAPID token and a payload http_ece decrypts.
            let records = try await harness.standin.requests().filter { $0.provider == "webpush" }
            #expect(records.count == 3)
            for record in records {
                #expect(record.violations.isEmpty, "\(record.violations)")
                #expect(record.decrypted != nil)
            }
        }
    }
}
