import Foundation
import HeraldCore
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
import HeraldReceipts
import Testing

/// Twilio's request signature against the test vectors of Twilio's own validator
/// (twilio-python `tests/unit/test_request_validator.py`: auth token 12345).
struct TwilioSignatureTests {
    static let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    static let parameters: [(name: String, value: String)] = [
        ("CallSid", "CA1234567890ABCDE"), ("Digits", "1234"), ("From", "+14158675309"), ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]

    @Test func computesTwiliosPublishedSignature() {
        #expect(TwilioSignature.compute(url: Self.url, parameters: Self.parameters, authToken: "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    }

    @Test func repeatedParametersAreSortedByValue() {
        let parameters: [(name: String, value: String)] = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
        #expect(TwilioSignature.compute(url: Self.url, parameters: parameters, authToken: "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    }

    @Test func acceptsTheURLWithOrWithoutItsPortAsTwiliosValidatorsDo() {
        // Signed over https://mycompany.com:443/… while the request came to https://mycompany.com/….
        #expect(TwilioSignature.isValid("kvajT1Ptam85bY51eRf/AJRuM3w=", url: Self.url, parameters: Self.parameters, authToken: "12345"))
        // Signed without a port; the request URL has one.
        let ported = Self.url.replacingOccurrences(of: ".com", with: ".com:1234")
        #expect(TwilioSignature.isValid("RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: ported, parameters: Self.parameters, authToken: "12345"))
    }

    @Test func refusesAnyChange() {
        let valid = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        #expect(!TwilioSignature.isValid(valid, url: Self.url, parameters: Self.parameters, authToken: "12346"))
        #expect(!TwilioSignature.isValid(valid, url: Self.url + "&x=1", parameters: Self.parameters, authToken: "12345"))
        var changed = Self.parameters
        changed[1].value = "1235"
        #expect(!TwilioSignature.isValid(valid, url: Self.url, parameters: changed, authToken: "12345"))
        #expect(!TwilioSignature.isValid(valid, url: Self.url, parameters: Self.parameters + [("Extra", "")], authToken: "12345"))
        #expect(!TwilioSignature.isValid("", url: Self.url, parameters: Self.parameters, authToken: "12345"))
    }
}

struct ReceiptReaderTests {
    static let links = try! ReceiptLinks(publicURL: "https://herald.example.com/", secret: "receipt-secret-0123456789")
    static let delivery = UUID(uuidString: "0190f4c6-0000-7000-8000-000000000001")!

    static let kannel = ReceiptSpec(
        verification: .deliveryToken, urlParameters: [.init(name: "status", value: "%d"), .init(name: "reply", value: "%A")],
        statusField: "status", detailField: "reply", statuses: ["1": .delivered, "2": .undelivered, "16": .undelivered])

    static let twilio = ReceiptSpec(
        verification: .twilioSignature(authToken: try! CompiledTemplate(TemplateText("{{secrets.TWILIO_AUTH_TOKEN}}"), escaping: .text)), statusField: "MessageStatus",
        messageIDField: "MessageSid", detailField: "ErrorCode",
        statuses: ["delivered": .delivered, "undelivered": .undelivered, "failed": .failed])

    static let signed = ReceiptSpec(
        verification: .standardWebhooks(secret: try! CompiledTemplate(TemplateText("{{secrets.RECEIPTS_SECRET}}"), escaping: .text)), statusField: "data.status",
        messageIDField: "data.message_id", deliveryIDField: "data.client_ref", statuses: ["DELIVRD": .delivered])

    static let secrets = SecretResolver(
        environment: ["TWILIO_AUTH_TOKEN": "itest-auth-token", "RECEIPTS_SECRET": "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()],
        secretsDirectory: "")

    /// What Kannel requests once it filled in the placeholders of `{{receipts.url}}`.
    static func kannelCallback(status: String, token: String? = nil, delivery: UUID = delivery) -> ReceiptRequest {
        let url = links.url(channel: "sms-kannel", provider: "kannel", deliveryID: delivery, parameters: kannel.urlParameters)
        var components = URLComponents(string: url.replacingOccurrences(of: "%d", with: status).replacingOccurrences(of: "%A", with: "ACK%2F"))!
        if let token {
            components.percentEncodedQueryItems = components.percentEncodedQueryItems!.map { $0.name == "t" ? URLQueryItem(name: "t", value: token) : $0 }
        }
        return ReceiptRequest(method: "GET", path: components.path, rawQuery: components.percentEncodedQuery, headers: [], body: [])
    }

    @Test func aKannelReportWithItsTokenNamesTheDeliveryAndStatus() throws {
        let reader = ReceiptReader(channel: "sms-kannel", provider: "kannel", spec: Self.kannel)
        let delivered = try reader.read(Self.kannelCallback(status: "1"), links: Self.links, secrets: Self.secrets, now: Date())
        #expect(delivered.deliveryID == Self.delivery)
        #expect(delivered.providerStatus == "1")
        #expect(delivered.outcome == .delivered)
        #expect(delivered.detail == "ACK/")
        let submitted = try reader.read(Self.kannelCallback(status: "8"), links: Self.links, secrets: Self.secrets, now: Date())
        #expect(submitted.outcome == nil, "8 (SMSC submit) is intermediate")
    }

    @Test func aForgedOrMovedTokenIsRefused() throws {
        let reader = ReceiptReader(channel: "sms-kannel", provider: "kannel", spec: Self.kannel)
        #expect(throws: ReceiptRejection.self) {
            try reader.read(Self.kannelCallback(status: "1", token: "AAAAAAAAAAAAAAAAAAAAAA"), links: Self.links, secrets: Self.secrets, now: Date())
        }
        // Another delivery's valid token doesn't work for this one.
        let other = UUID()
        let otherToken = Self.links.token(channel: "sms-kannel", provider: "kannel", deliveryID: other)
        do {
            _ = try reader.read(Self.kannelCallback(status: "1", token: otherToken), links: Self.links, secrets: Self.secrets, now: Date())
            Issue.record("a token of another delivery was accepted")
        } catch {
            #expect(error.kind == .forbidden)
        }
        // The token is bound to the route's channel and provider too.
        let elsewhere = ReceiptReader(channel: "sms", provider: "kannel", spec: Self.kannel)
        #expect(throws: ReceiptRejection.self) {
            try elsewhere.read(Self.kannelCallback(status: "1"), links: Self.links, secrets: Self.secrets, now: Date())
        }
        // No token at all: delivery_token has nothing else to go by.
        let bare = ReceiptRequest(method: "GET", path: "/v1/receipts/sms-kannel/kannel", rawQuery: "status=1", headers: [], body: [])
        do {
            _ = try reader.read(bare, links: Self.links, secrets: Self.secrets, now: Date())
            Issue.record("a receipt without a token was accepted")
        } catch {
            #expect(error.kind == .forbidden)
        }
    }

    static func twilioCallback(signedWith token: String, status: String = "delivered", tamper: Bool = false) -> ReceiptRequest {
        let url = links.url(channel: "sms-twilio", provider: "twilio", deliveryID: delivery)
        let components = URLComponents(string: url)!
        var form: [(name: String, value: String)] = [
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"), ("MessageStatus", status), ("AccountSid", "AC123"), ("To", "+15550100001"),
        ]
        let signature = TwilioSignature.compute(url: url, parameters: form, authToken: token)
        if tamper { form[1].value = "undelivered" }
        let body = ProviderEncoding.formBody(form)
        return ReceiptRequest(
            method: "POST", path: components.path, rawQuery: components.percentEncodedQuery,
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature)], body: Array(body.utf8))
    }

    @Test func twilioCallbacksNeedTheAccountsSignature() throws {
        let reader = ReceiptReader(channel: "sms-twilio", provider: "twilio", spec: Self.twilio)
        let receipt = try reader.read(Self.twilioCallback(signedWith: "itest-auth-token"), links: Self.links, secrets: Self.secrets, now: Date())
        #expect(receipt.deliveryID == Self.delivery)
        #expect(receipt.providerMessageID == "SM0123456789abcdef0123456789abcdef")
        #expect(receipt.outcome == .delivered)
        for request in [Self.twilioCallback(signedWith: "another-token"), Self.twilioCallback(signedWith: "itest-auth-token", tamper: true)] {
            do {
                _ = try reader.read(request, links: Self.links, secrets: Self.secrets, now: Date())
                Issue.record("a badly signed Twilio callback was accepted")
            } catch {
                #expect(error.kind == .forbidden)
            }
        }
        // The auth token is not configured: refused as unverifiable, not accepted.
        do {
            _ = try reader.read(
                Self.twilioCallback(signedWith: "itest-auth-token"), links: Self.links, secrets: SecretResolver(environment: [:], secretsDirectory: ""),
                now: Date())
            Issue.record("accepted without the auth token")
        } catch {
            #expect(error.kind == .unconfigured)
        }
    }

    @Test func standardWebhooksReceiptsAreCheckedOverTheExactBody() throws {
        let reader = ReceiptReader(channel: "sms-vonage", provider: "vonage", spec: Self.signed)
        let key = StandardWebhooks.key(fromSecret: Self.secrets.value("RECEIPTS_SECRET")!)!
        let body = Array(#"{"type":"message.status","data":{"status":"DELIVRD","client_ref":"0190f4c6-0000-7000-8000-000000000001","message_id":"m-1"}}"#.utf8)
        let now = Date()
        func request(timestamp: Int, body sent: [UInt8]) -> ReceiptRequest {
            let signature = StandardWebhooks.signature(key: key, id: "msg_1", timestamp: timestamp, body: body)
            return ReceiptRequest(
                method: "POST", path: "/v1/receipts/sms-vonage/vonage", rawQuery: nil,
                headers: [("Content-Type", "application/json"), ("webhook-id", "msg_1"), ("webhook-timestamp", String(timestamp)),
                          ("webhook-signature", "v1,bogus " + signature)],
                body: sent)
        }
        let receipt = try reader.read(request(timestamp: Int(now.timeIntervalSince1970), body: body), links: nil, secrets: Self.secrets, now: now)
        #expect(receipt.deliveryID == Self.delivery)
        #expect(receipt.providerMessageID == "m-1")
        #expect(receipt.outcome == .delivered)
        var changed = body
        changed[changed.count - 3] = UInt8(ascii: "2")
        #expect(throws: ReceiptRejection.self) {
            try reader.read(request(timestamp: Int(now.timeIntervalSince1970), body: changed), links: nil, secrets: Self.secrets, now: now)
        }
        #expect(throws: ReceiptRejection.self) {
            try reader.read(request(timestamp: Int(now.timeIntervalSince1970) - 600, body: body), links: nil, secrets: Self.secrets, now: now)
        }
    }

    @Test func receiptLinksCarryTheProvidersPlaceholdersUnencoded() {
        let url = Self.links.url(channel: "sms-kannel", provider: "kannel", deliveryID: Self.delivery, parameters: Self.kannel.urlParameters)
        #expect(url.hasPrefix("https://herald.example.com/v1/receipts/sms-kannel/kannel?d=0190f4c6-0000-7000-8000-000000000001&t="))
        #expect(url.hasSuffix("&status=%d&reply=%A"))
        // No '%' in Herald's own part: Kannel would take it for a placeholder.
        #expect(!url.dropLast("&status=%d&reply=%A".count).contains("%"))
    }
}
