import HeraldCore
import Testing

@testable import HeraldGateway

@Suite struct AlertWebhookTests {
    let routing = AlertRouting(channel: "ops-email", to: ["email": "ops@example.com"])

    func payload(channelLabel: String, status: String = "firing", startsAt: String = "2026-12-02T10:00:00Z") throws -> JSONValue {
        try JSONParser.parse(Array("""
            {"version": "4", "groupKey": "{}:{alertname=\\"HeraldDeliveryFailureRatio\\"}", "status": "\(status)",
             "receiver": "herald", "externalURL": "http://alertmanager:9093",
             "commonLabels": {"alertname": "HeraldDeliveryFailureRatio"},
             "alerts": [{"status": "\(status)", "labels": {"alertname": "HeraldDeliveryFailureRatio", "channel": "\(channelLabel)", "provider": "twilio"},
                         "annotations": {"summary": "40% of sms attempts fail"}, "startsAt": "\(startsAt)"}]}
            """.utf8))
    }

    @Test func aGroupBecomesOneNotificationOnTheAlertChannel() throws {
        let converted = try AlertmanagerWebhook.notification(from: try payload(channelLabel: "sms"), routing: routing)
        let request = try #require(converted.request)
        #expect(request["channel"] == "ops-email")
        #expect(request["to"]?["email"] == "ops@example.com")
        #expect(request.value(atPath: "message.subject") == "[FIRING:1] HeraldDeliveryFailureRatio")
        #expect(request.value(atPath: "message.text")?.stringValue?.contains("40% of sms attempts fail") == true)
        #expect(request.value(atPath: "metadata.source") == "alertmanager")
        #expect(converted.dropped == 0)
    }

    @Test func alertsAboutTheAlertChannelItselfAreNotSentThroughIt() throws {
        let converted = try AlertmanagerWebhook.notification(from: try payload(channelLabel: "ops-email"), routing: routing)
        #expect(converted.request == nil)
        #expect(converted.dropped == 1)
    }

    @Test func retriesShareAKeyAndANewFiringDoesNot() throws {
        let first = try AlertmanagerWebhook.notification(from: try payload(channelLabel: "sms"), routing: routing)
        let retry = try AlertmanagerWebhook.notification(from: try payload(channelLabel: "sms"), routing: routing)
        let resolved = try AlertmanagerWebhook.notification(from: try payload(channelLabel: "sms", status: "resolved"), routing: routing)
        let later = try AlertmanagerWebhook.notification(
            from: try payload(channelLabel: "sms", startsAt: "2026-12-02T12:00:00Z"), routing: routing)
        #expect(first.idempotencyKey == retry.idempotencyKey)
        #expect(first.idempotencyKey != resolved.idempotencyKey)
        #expect(first.idempotencyKey != later.idempotencyKey)
    }

    @Test func aBodyThatIsNotAPayloadIsRefusedPrecisely() throws {
        #expect(throws: AlertmanagerWebhook.Invalid.self) {
            try AlertmanagerWebhook.notification(from: ["status": "firing"], routing: routing)
        }
        #expect(throws: AlertmanagerWebhook.Invalid.self) {
            try AlertmanagerWebhook.notification(from: ["status": "odd", "alerts": []], routing: routing)
        }
    }

    /// A group with alerts about the operators' channel and others: only the others are sent.
    @Test func aMixedGroupSendsOnlyTheAlertsAboutOtherChannels() throws {
        let payload = try JSONParser.parse(Array("""
            {"status": "firing", "groupKey": "g", "alerts": [
              {"status": "firing", "labels": {"alertname": "HeraldDeadLettersGrowing", "channel": "ops-email"}, "startsAt": "2026-12-02T10:00:00Z"},
              {"status": "firing", "labels": {"alertname": "HeraldDeadLettersGrowing", "channel": "sms"}, "startsAt": "2026-12-02T10:00:00Z"}]}
            """.utf8))
        let converted = try AlertmanagerWebhook.notification(from: payload, routing: routing)
        #expect(converted.dropped == 1)
        let text = try #require(converted.request?.value(atPath: "message.text")?.stringValue)
        #expect(text.contains("channel=sms"))
        #expect(!text.contains("channel=ops-email"))
        #expect(converted.request?.value(atPath: "message.subject") == "[FIRING:1] HeraldDeadLettersGrowing")
    }
}
