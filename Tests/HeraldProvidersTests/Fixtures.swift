import Testing
import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import HeraldTemplating
import Logging

enum Fixtures {
    static let deliveryID = UUID(uuidString: "0F8FAD5B-D9CB-469F-A165-70867728950E")!
    static let notificationID = UUID(uuidString: "7C9E6679-7425-40DE-944B-E07FC1F90AE7")!
    static let now = Date(timeIntervalSince1970: 1_700_000_000)
    static let logger = Logger(label: "herald.providers.tests")

    /// The characters that must stay data wherever they land.
    static let hostile = "a\"b\\c</script>d\ne&f=g/h?i#j k+l%m\r\n.."

    static func job(
        to: [String: JSONValue] = ["email": "ada@example.com", "phone": "+15551234567"],
        message: MessageContent = MessageContent(subject: "Hello", text: "Hi there", html: "<p>Hi there</p>"),
        metadata: JSONValue = ["order": 42], attempt: Int = 1
    ) -> DeliveryJob {
        DeliveryJob(
            deliveryID: deliveryID, notificationID: notificationID, channel: "test", attempt: attempt, to: to,
            message: message, metadata: metadata, acceptedAt: now)
    }

    static func http(
        method: String = "POST", url: String, headers: [(String, String)] = [], body: HTTPProviderSpec.Body? = nil,
        auth: HTTPProviderSpec.Auth? = nil, response: HTTPProviderSpec.ResponseRules = .init()
    ) -> ProviderSpec {
        ProviderSpec(
            name: "test-http",
            transport: .http(
                HTTPProviderSpec(
                    method: method, url: t(url, .url(for: TemplateText(url))),
                    headers: headers.map { .init(name: $0.0, value: t($0.1, .header)) }, body: body,
                    auth: auth, response: response)))
    }

    /// A template compiled as the configuration loader would for where it lands (a test's templates are valid).
    static func t(_ source: String, _ escaping: Escaping = .text) -> CompiledTemplate {
        do {
            return try CompiledTemplate(TemplateText(source), escaping: escaping)
        } catch {
            fatalError("test template '\(source)': \(error)")
        }
    }

    /// `body.text` with the escaping of its content type.
    static func textBody(_ source: String, contentType: String) -> HTTPProviderSpec.Body {
        .text(t(source, Escaping(contentType: contentType)), contentType: contentType)
    }

    static func client(
        _ spec: ProviderSpec, runtime: CurlRuntime = CurlRuntime(logger: logger), secrets: [String: String] = [:],
        timeout: Duration = .seconds(5)
    ) throws -> ProviderClient {
        ProviderClient(
            spec: spec, runtime: runtime, secrets: SecretResolver(environment: secrets, secretsDirectory: "/nonexistent-herald-secrets"),
            restrictToPublicAddresses: false, timeout: timeout, logger: logger)
    }

    /// Runs `body` with a started runtime, shut down afterwards.
    static func withRuntime<T: Sendable>(_ body: (CurlRuntime) async throws -> T) async throws -> T {
        let runtime = CurlRuntime(logger: logger)
        let service = Task { try await runtime.run() }
        do {
            let result = try await body(runtime)
            service.cancel()
            _ = try? await service.value
            return result
        } catch {
            service.cancel()
            _ = try? await service.value
            throw error
        }
    }

    static func header(_ request: HTTPRequest, _ name: String) -> String? {
        request.headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    static func jsonObject(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    /// Decodes `application/x-www-form-urlencoded` the way a server would.
    static func formDecode(_ text: String) -> [(String, String)] {
        text.split(separator: "&", omittingEmptySubsequences: false).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "<invalid>"
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}
