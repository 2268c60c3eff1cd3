import Foundation
import HeraldCore
import HeraldEngine
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import Logging
import Synchronization

typealias ProviderTry = ProviderAttempt

extension ProviderAttempt {
    init(provider: String, startedAt: Date, finishedAt: Date, result: ProviderResult) {
        self.init(
            provider: provider, startedAt: startedAt, finishedAt: finishedAt, outcome: result.outcome,
            httpStatus: result.httpStatus, error: result.error, providerMessageID: result.providerMessageID,
            retryAfter: result.retryAfter)
    }
}

/// Makes one attempt of a delivery: the channel's providers in order, stopping at the first success.
/// A provider that failed is followed by the next (failover) unless the failure was ambiguous — the
/// message may have gone out, and a second provider would send it twice — or the provider throttled.
final class DeliveryAttempter: Sendable {
    let runtime: CurlRuntime
    let secrets: SecretResolver
    let restrictToPublicAddresses: Bool
    let receiptLinks: ReceiptLinks?
    let logger: Logger
    /// Provider clients of the snapshot in force, per channel; rebuilt when the version changes.
    private let clients = Mutex<(version: String, byChannel: [String: [ProviderClient]])>(("", [:]))

    init(
        runtime: CurlRuntime, secrets: SecretResolver, restrictToPublicAddresses: Bool,
        receiptLinks: ReceiptLinks? = nil, logger: Logger
    ) {
        self.receiptLinks = receiptLinks
        self.runtime = runtime
        self.secrets = secrets
        self.restrictToPublicAddresses = restrictToPublicAddresses
        self.logger = logger
    }

    func attempt(
        _ job: DeliveryJob, channel: ChannelDefinition, providers specs: [ProviderSpec], snapshotVersion: String
    ) async -> [ProviderTry] {
        if specs.isEmpty {
            // The loader refuses a channel without providers; a hand-built snapshot could still have one.
            let now = Date()
            let result = ProviderResult(outcome: .permanentFailure, error: "channel '\(channel.name)' has no providers")
            return [ProviderTry(provider: "none", startedAt: now, finishedAt: now, result: result)]
        }
        let providers = clients(for: channel, specs: specs, version: snapshotVersion)
        var tries: [ProviderTry] = []
        var sawTransient = false
        for provider in providers {
            let started = Date()
            let result = await provider.attempt(job, recipientField: channel.recipient.name)
            tries.append(ProviderTry(provider: provider.name, startedAt: started, finishedAt: Date(), result: result))
            switch result.outcome {
            // Throttled: the provider asked to wait, the message is fine; the channel slows down and the
            // same provider gets it again (failover is for providers that fail, not ones that pace us).
            case .success, .ambiguous, .throttled: return tries
            case .transientFailure: sawTransient = true
            case .permanentFailure: break
            }
        }
        // Every provider failed. If any of them may work later, the delivery is worth retrying.
        if sawTransient, var last = tries.last, last.outcome == .permanentFailure {
            last.outcome = .transientFailure
            tries[tries.count - 1] = last
        }
        return tries
    }

    /// The clients (and their token caches) for the snapshot's providers, made once per snapshot version;
    /// the providers themselves were compiled when the snapshot was loaded.
    private func clients(for channel: ChannelDefinition, specs: [ProviderSpec], version: String) -> [ProviderClient] {
        if let cached = clients.withLock({ $0.version == version ? $0.byChannel[channel.name] : nil }) { return cached }
        let built = specs.map {
            ProviderClient(
                spec: $0, runtime: runtime, secrets: secrets, restrictToPublicAddresses: restrictToPublicAddresses,
                timeout: channel.timeout, logger: logger, receiptLinks: receiptLinks)
        }
        clients.withLock { state in
            if state.version != version { state = (version, [:]) }
            state.byChannel[channel.name] = built
        }
        return built
    }
}
