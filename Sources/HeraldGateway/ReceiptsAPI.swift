import Foundation
import HTTPTypes
import HeraldConfig
import HeraldCore
import HeraldProviderModel
import HeraldProviders
import HeraldReceipts
import HeraldStore
import Hummingbird
import Logging
import Metrics
import NIOCore
import Synchronization

/// `GET|POST /v1/receipts/{channel}/{provider}`: a provider's status callback (delivery receipt), as its
/// `receipts:` declares. Not behind API keys (see `ReceiptReader`): the provider's signature or the
/// per-delivery token in the URL is checked instead, and a callback that fails the check is a 403.
final class ReceiptsAPI: Sendable {
    let config: ConfigStore
    let store: ReceiptStore
    let links: ReceiptLinks?
    let secrets: SecretResolver
    let deadline: Duration
    let logger: Logger
    /// Readers of the configuration in force, per channel and provider.
    private let readers = Mutex<(version: String, byKey: [String: ReceiptReader])>(("", [:]))

    init(config: ConfigStore, store: ReceiptStore, links: ReceiptLinks?, secrets: SecretResolver, deadline: Duration, logger: Logger) {
        self.config = config
        self.store = store
        self.links = links
        self.secrets = secrets
        self.deadline = deadline
        self.logger = logger
    }

    static let pathPrefix = "/v1/receipts/"
    /// Callbacks are small: a form or a JSON object of a few fields.
    static let maxBodySize = 64 << 10

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/v1/receipts/:channel/:provider") { request, context in try await self.receive(request, context: context) }
        router.post("/v1/receipts/:channel/:provider") { request, context in try await self.receive(request, context: context) }
    }

    func receive(_ request: Request, context: some RequestContext) async throws -> Response {
        let channelName = context.parameters.get("channel") ?? ""
        let providerName = context.parameters.get("provider") ?? ""
        let reader = try reader(channel: channelName, provider: providerName)
        let body = try await ProblemDetails.collectBody(request, upTo: Self.maxBodySize, what: "receipt callbacks")
        let receiptRequest = ReceiptRequest(
            method: request.method.rawValue, path: request.uri.path, rawQuery: request.uri.query,
            headers: request.headers.map { ($0.name.rawName, $0.value) }, body: Array(buffer: body))
        let receipt: Receipt
        do {
            receipt = try reader.read(receiptRequest, links: links, secrets: secrets, now: Date())
        } catch {
            count(channelName, providerName, result: "refused")
            logger.warning("receipt refused", metadata: [
                "herald.channel": "\(channelName)", "provider": "\(providerName)", "reason": "\(error.description)",
            ])
            switch error.kind {
            case .forbidden:
                throw ProblemDetails(
                    type: ProblemDetails.base + "receipt-not-verified", title: "The receipt could not be verified", status: .forbidden,
                    detail: error.description)
            case .invalid:
                throw ProblemDetails(
                    type: ProblemDetails.base + "receipt-invalid", title: "The receipt is not valid", status: .badRequest,
                    detail: error.description)
            case .unconfigured:
                throw ProblemDetails.unavailable(error.description, retryAfter: 60)
            }
        }
        let report = ReceiptReport(
            deliveryID: receipt.deliveryID, providerMessageID: receipt.providerMessageID, channel: channelName,
            provider: providerName, providerStatus: receipt.providerStatus, outcome: receipt.outcome, detail: receipt.detail)
        let store = self.store
        guard let applied = try await withDeadline(deadline, "recording the receipt", { try await store.apply(report) }) else {
            count(channelName, providerName, result: "unknown_delivery")
            throw ProblemDetails.notFound(
                "channel \(channelName) has no delivery "
                    + (receipt.deliveryID.map { $0.lowercasedString } ?? "with provider message id \(receipt.providerMessageID ?? "")"))
        }
        count(channelName, providerName, result: applied.duplicate ? "duplicate" : applied.changed ? "applied" : "recorded")
        logger.info("receipt recorded", metadata: [
            "herald.channel": "\(channelName)", "provider": "\(providerName)", "herald.delivery_id": "\(applied.deliveryID.lowercasedString)",
            "provider_status": "\(receipt.providerStatus)", "status": "\(applied.status.rawValue)", "duplicate": "\(applied.duplicate)",
        ])
        return try NotificationAPI.json(ReceiptResponse(applied, providerStatus: receipt.providerStatus))
    }

    func reader(channel channelName: String, provider providerName: String) throws -> ReceiptReader {
        let snapshot = config.snapshot
        let key = channelName + "/" + providerName
        if let cached = readers.withLock({ $0.version == snapshot.version ? $0.byKey[key] : nil }) { return cached }
        guard snapshot.registry[channelName] != nil else {
            throw ProblemDetails.notFound("no channel '\(channelName)'")
        }
        guard let provider = snapshot.providers(for: channelName).first(where: { $0.name == providerName }) else {
            throw ProblemDetails.notFound("channel \(channelName) has no provider '\(providerName)'")
        }
        guard let spec = provider.receipts else {
            throw ProblemDetails.notFound("provider \(providerName) of channel \(channelName) declares no receipts")
        }
        let reader = ReceiptReader(channel: channelName, provider: providerName, spec: spec)
        readers.withLock { state in
            if state.version != snapshot.version { state = (snapshot.version, [:]) }
            state.byKey[key] = reader
        }
        return reader
    }

    private func count(_ channel: String, _ provider: String, result: String) {
        Counter(label: "herald_receipts_total", dimensions: [("channel", channel), ("provider", provider), ("result", result)]).increment()
    }
}

/// The answer to a receipt callback.
struct ReceiptResponse: Codable, Sendable {
    var deliveryId: String
    var providerStatus: String
    var previousStatus: String
    var status: String
    var changed: Bool
    var duplicate: Bool
    var note: String?

    enum CodingKeys: String, CodingKey {
        case deliveryId = "delivery_id", providerStatus = "provider_status", previousStatus = "previous_status", status, changed,
            duplicate, note
    }

    init(_ applied: AppliedReceipt, providerStatus: String) {
        deliveryId = applied.deliveryID.lowercasedString
        self.providerStatus = providerStatus
        previousStatus = applied.previousStatus.rawValue
        status = applied.status.rawValue
        changed = applied.changed
        duplicate = applied.duplicate
        note = applied.note
    }
}
