import Foundation
import HeraldConfig
import HeraldCore
import HeraldEngine
import HeraldHTTPRuntime
import HeraldProviders
import HeraldTemplating
import Logging

/// The operations a notification goes through on its hot path, each on fixed inputs built once from
/// the repository's shipped configuration (channels.d/, templates/, routing.yaml). The ordo-one
/// benchmarks and the callgrind counter run exactly these closures.
public struct HotPaths: Sendable {
    public struct Operation: Sendable {
        public var name: String
        public var summary: String
        public var run: @Sendable () async throws -> Int
    }

    public let operations: [Operation]

    /// - Parameter root: the checkout (where channels.d/ and templates/ are).
    public init(root: String) throws {
        let snapshot: ConfigSnapshot
        switch ConfigLoader(directory: root).load() {
        case .success(let loaded): snapshot = loaded
        case .failure(let errors): throw FixtureError(description: "the configuration in \(root) does not load: \(errors)")
        }
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        var configuredValidator = snapshot.validator
        configuredValidator.allowPrivateTargets = true
        let validator = configuredValidator

        // The request scripts/bench sends, and one routed by rules and rendered from a template.
        let webhookBody = Array(
            #"{"channel":"webhook","to":{"webhook_url":"http://127.0.0.1:9190/hooks/bench"},"message":{"subject":"Bench","text":"Hello from scripts/bench"},"metadata":{"source":"bench"}}"#
                .utf8)
        let templatedBody = Array(
            #"{"template":"welcome","to":{"email":"ada@example.com","locale":"en"},"data":{"name":"Ada","product":"Herald","login_url":"https://example.com/login"},"metadata":{"campaign":"spring"}}"#
                .utf8)
        let webhookJSON = try JSONParser.parse(webhookBody)
        let templatedJSON = try JSONParser.parse(templatedBody)
        guard case .success(let webhookRequest) = validator.validate(webhookJSON, now: now),
            case .success(let templatedRequest) = validator.validate(templatedJSON, now: now)
        else { throw FixtureError(description: "the fixture requests do not validate") }
        guard case .success(let planned) = DeliveryEngine.plan(webhookRequest, snapshot: snapshot, now: now, tenant: "bench"),
            let delivery = planned.notification.deliveries.first
        else { throw FixtureError(description: "the webhook request does not plan") }
        let jobBytes = Array(delivery.job.utf8)
        let job = try DeliveryJob.decode(jobBytes)

        guard let template = snapshot.templates["welcome"] else { throw FixtureError(description: "no welcome template") }
        let renderValues: [String: JSONValue] = [
            "data": templatedRequest.data, "to": .object(templatedRequest.to), "metadata": templatedRequest.metadata,
        ]

        guard snapshot.registry["webhook"] != nil, let spec = snapshot.providers(for: "webhook").first else {
            throw FixtureError(description: "channels.d/webhook.yaml has no provider")
        }
        let secret = "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let provider = ProviderClient(
            spec: spec, runtime: CurlRuntime(logger: Logger(label: "bench")),
            secrets: SecretResolver(environment: ["WEBHOOK_SECRET": secret]), restrictToPublicAddresses: false,
            timeout: .seconds(15), logger: Logger(label: "bench"))
        let signingKey = StandardWebhooks.key(fromSecret: secret) ?? []
        let signedBody = Array(repeating: UInt8(ascii: "x"), count: 400)
        let messageID = StandardWebhooks.messageID(deliveryID: job.deliveryID)
        guard case .http(let http) = spec.transport else { throw FixtureError(description: "the webhook provider is not http") }
        let rules = http.response
        let success = HTTPResponse(status: 200, headers: [HTTPHeaderField("Content-Type", "text/plain")], body: Array("ok".utf8))
        let throttled = HTTPResponse(
            status: 429, headers: [HTTPHeaderField("Retry-After", "30")], body: Array(#"{"error":"slow down"}"#.utf8))

        operations = [
            Operation(name: "request decode + validate", summary: "JSONParser.parse + RequestValidator.validate (webhook request)") {
                let json = try JSONParser.parse(webhookBody)
                guard case .success(let request) = validator.validate(json, now: now) else { return 0 }
                return request.to.count
            },
            Operation(name: "routing", summary: "ConfigSnapshot.route: rules over a templated request without channel") {
                snapshot.route(templatedJSON)?.channels.count ?? 0
            },
            Operation(name: "plan (webhook)", summary: "DeliveryEngine.plan: the job of an inline webhook request, encoded") {
                guard case .success(let planned) = DeliveryEngine.plan(webhookRequest, snapshot: snapshot, now: now, tenant: "bench")
                else { return 0 }
                return planned.notification.deliveries.count
            },
            Operation(name: "template render", summary: "MessageTemplate.render: welcome, email (subject, text, html)") {
                let message = try template.render(category: .email, locale: "en", context: RenderContext(renderValues))
                return message.html?.utf8.count ?? 0
            },
            Operation(name: "job encode", summary: "DeliveryJob.encoded") {
                try job.encoded().count
            },
            Operation(name: "job decode", summary: "DeliveryJob.decode") {
                try DeliveryJob.decode(jobBytes).to.count
            },
            Operation(name: "provider request build + sign", summary: "ProviderClient.buildRequest: webhook body rendered, Standard Webhooks signature") {
                try await provider.buildRequest(for: job, now: now).body.count
            },
            Operation(name: "signature", summary: "StandardWebhooks.signature over a 400-byte body") {
                StandardWebhooks.signature(key: signingKey, id: messageID, timestamp: 1_800_000_000, body: signedBody).utf8.count
            },
            Operation(name: "outcome classification", summary: "ResponseClassifier.classify: a 200 and a 429 with Retry-After") {
                let first = ResponseClassifier.classify(success, rules: rules, now: now)
                let second = ResponseClassifier.classify(throttled, rules: rules, now: now)
                return (first.outcome == .success ? 1 : 0) + (second.retryAfter == nil ? 0 : 1)
            },
        ]
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
}

/// The checkout root: $HERALD_ROOT, else the parent of the Benchmarks package (the current directory
/// when run through `swift package --package-path Benchmarks`), found by its channels.d/ folder.
public func checkoutRoot() -> String {
    if let root = ProcessInfo.processInfo.environment["HERALD_ROOT"], !root.isEmpty { return root }
    var url = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    for _ in 0..<4 {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("channels.d").path) { return url.path }
        url.deleteLastPathComponent()
    }
    return FileManager.default.currentDirectoryPath
}
