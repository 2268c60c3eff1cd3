import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
import Logging
import Testing

/// What `sms:` and `receipts:` put in a provider's request.
@Suite("SMS coding and receipt URLs in requests")
struct SMSAndReceiptsRequestTests {
    static let kannelURL =
        "http://kannel.test/cgi-bin/sendsms?to={{to.phone}}&text={{message.text}}&coding={{sms.coding}}&parts={{sms.parts}}"
        + "{{#receipts}}&dlr-mask=27&dlr-url={{receipts.url}}{{/receipts}}"

    static func kannel(receipts: ReceiptLinks?) throws -> ProviderClient {
        let http = Fixtures.http(method: "GET", url: kannelURL)
        let spec = ProviderSpec(
            name: http.name, transport: http.transport, sms: SMSProviderSettings(maxParts: 3, coding: [.gsm7: "0", .ucs2: "2"]),
            receipts: ReceiptSpec(
                verification: .deliveryToken, urlParameters: [.init(name: "status", value: "%d")], statusField: "status",
                statuses: ["1": .delivered]))
        return ProviderClient(
            spec: spec, runtime: CurlRuntime(logger: Fixtures.logger), secrets: SecretResolver(environment: [:], secretsDirectory: ""),
            restrictToPublicAddresses: false, timeout: .seconds(5), logger: Fixtures.logger, receiptLinks: receipts)
    }

    static func query(_ request: HTTPRequest) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (URLComponents(string: request.url)?.queryItems ?? []).map { ($0.name, $0.value ?? "") })
    }

    @Test("the coding and part count follow the text")
    func codingFollowsTheText() async throws {
        let client = try Self.kannel(receipts: nil)
        let gsm = try await client.buildRequest(for: Fixtures.job(message: .init(text: "Hello € world")), now: Fixtures.now)
        #expect(Self.query(gsm)["coding"] == "0")
        #expect(Self.query(gsm)["parts"] == "1")
        let ucs2 = try await client.buildRequest(for: Fixtures.job(message: .init(text: String(repeating: "Ж", count: 71))), now: Fixtures.now)
        #expect(Self.query(ucs2)["coding"] == "2")
        #expect(Self.query(ucs2)["parts"] == "2")
        // Without receipts configured, the section asks for none.
        #expect(Self.query(gsm)["dlr-url"] == nil && Self.query(gsm)["dlr-mask"] == nil)
    }

    @Test("a text over the provider's parts is refused before sending, as a permanent failure")
    func overTheLimitIsRefused() async throws {
        let client = try Self.kannel(receipts: nil)
        do {
            _ = try await client.buildRequest(for: Fixtures.job(message: .init(text: String(repeating: "x", count: 460))), now: Fixtures.now)
            Issue.record("a 4-part text was built for a 3-part provider")
        } catch let failure as ProviderFailure {
            #expect(failure.result.outcome == .permanentFailure)
            #expect(failure.description.contains("needs 4 SMS parts"))
        }
    }

    @Test("the receipt URL carries the delivery's token and the provider's placeholders, encoded as one value")
    func receiptURL() async throws {
        let links = try ReceiptLinks(publicURL: "https://herald.example.com", secret: "0123456789abcdef-secret")
        let client = try Self.kannel(receipts: links)
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        let query = Self.query(request)
        #expect(query["dlr-mask"] == "27")
        let expected = links.url(
            channel: "test", provider: "test-http", deliveryID: Fixtures.deliveryID, parameters: [.init(name: "status", value: "%d")])
        #expect(query["dlr-url"] == expected)
        #expect(request.url.contains("dlr-url=https%3A%2F%2Fherald.example.com%2Fv1%2Freceipts%2Ftest%2Ftest-http%3Fd%3D"))
        #expect(request.url.hasSuffix("%26status%3D%25d"))
    }

    @Test("a form field that renders empty is left out")
    func emptyFormFieldsAreLeftOut() async throws {
        let client = try Fixtures.client(
            Fixtures.http(
                url: "https://api.example.com/Messages.json",
                body: .form([
                    .init(name: "Body", value: Fixtures.t("{{message.text}}")),
                    .init(name: "StatusCallback", value: Fixtures.t("{{receipts.url}}")),
                ])))
        let request = try await client.buildRequest(for: Fixtures.job(), now: Fixtures.now)
        #expect(String(decoding: request.body, as: UTF8.self) == "Body=Hi+there")
    }
}
