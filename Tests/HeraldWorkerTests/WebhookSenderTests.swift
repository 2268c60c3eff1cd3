import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldWorker
import Testing

@Suite struct WebhookSenderTests {
    @Test func signsTheStandardWebhooksTestVector() throws {
        // The vector from the Standard Webhooks reference libraries.
        let signer = try WebhookSigner(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let signature = signer.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func rejectsASecretThatIsNotBase64() {
        #expect(throws: WebhookSigner.InvalidSecret.self) { try WebhookSigner(secret: "whsec_not base64!") }
    }

    @Test func buildsASignedPostWhoseBodyCarriesHostileTextIntact() throws {
        let hostile = "\"},\"evil\":true,{\"x\":\"</script><script>alert(1)</script>\u{0}"
        let job = DeliveryJob(
            deliveryID: .timeOrdered(), notificationID: .timeOrdered(), channel: "webhook", attempt: 3,
            to: ["webhook_url": "https://hooks.example.com/in"], message: .init(subject: "S", text: hostile),
            metadata: ["k": "v"], acceptedAt: Date())
        let sender = WebhookSender(
            signer: try WebhookSigner(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), timeout: .seconds(5),
            restrictToPublicAddresses: true)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let request = try sender.request(for: job, recipientField: "webhook_url", now: now)
        #expect(request.method == "POST")
        #expect(request.url == "https://hooks.example.com/in")
        #expect(request.restrictToPublicAddresses)
        let headers = Dictionary(request.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { $1 })
        let id = try #require(headers["webhook-id"])
        #expect(headers["webhook-timestamp"] == "1700000000")
        #expect(headers["webhook-signature"]
            == (try WebhookSigner(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).signature(id: id, timestamp: 1_700_000_000, body: request.body))
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(request.body))
        #expect(decoded.value(atPath: "data.text") == .string(hostile))
        #expect(decoded.value(atPath: "data.attempt") == 3)
        #expect(decoded["evil"] == nil)
        #expect(decoded.value(atPath: "type") == "notification.send")
    }
}
