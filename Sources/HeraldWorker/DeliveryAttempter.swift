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
///
/// A provider whose circuit is open on this replica is skipped (the next one is tried); when every
/// provider's circuit is open nobody is called and the attempt is a transient failure that comes
/// back when the first circuit lets a probe through.
final class DeliveryAttempter: Sendable {
    let runtime: CurlRuntime
    let secrets: SecretResolver
    let restrictToPublicAddresses: Bool
    let receiptLinks: ReceiptLinks?
    let circuits: ProviderCircuits
    let logger: Logger
    /// Provider clients of the snapshot in force, per channel; rebuilt when the version changes.
    private let clients = Mutex<(version: String, byChannel: [String: [ProviderClient]])>(("", [:]))

    init(
        runtime: CurlRuntime, secrets: SecretResolver, restrictToPublicAddresses: Bool,
        receiptLinks: ReceiptLinks? = nil, circuits: ProviderCircuits, logger: Logger
    ) {
        self.circuits = circuits
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
        // Providers skipped because their circuit is open, with when they may be tried again.
        var rejected: [(provider: String, until: ContinuousClock.Instant)] = []
        for provider in providers {
            let probe: Bool
            switch circuits.decide(channel: channel, provider: provider.name) {
            case .allow: probe = false
            case .probe: probe = true
            case .reject(let until):
                rejected.append((provider.name, until))
                // The provider may well work later: a retry is worth it even if the rest fail for good.
                sawTransient = true
                continue
            }
            let started = Date()
            let result = await provider.attempt(job, recipientField: channel.recipient.name)
            circuits.record(channel: channel, provider: provider.name, outcome: result.outcome, probe: probe)
            tries.append(ProviderTry(provider: provider.name, startedAt: started, finishedAt: Date(), result: result))
            switch result.outcome {
            // Throttled: the provider asked to wait, the message is fine; the channel slows down and the
            // same provider gets it again (failover is for providers that fail, not ones that pace us).
            case .success, .ambiguous, .throttled: return tries
            case .transientFailure: sawTransient = true
            case .permanentFailure: break
            }
        }
        if tries.isEmpty, let first = rejected.min(by: { $0.until < $1.until }) {
            return [Self.allCircuitsOpen(rejected, earliest: first.until)]
        }
        // Every provider failed. If any of them may work later, the delivery is worth retrying.
        if sawTransient, var last = tries.last, last.outcome == .permanentFailure {
            last.outcome = .transientFailure
            tries[tries.count - 1] = last
        }
        return tries
    }

    /// The attempt when every provider's circuit is open: nobody was called; transient, to be made
    /// again when the first circuit half-opens (the engine never retries sooner than `retryAfter`).
    static func allCircuitsOpen(
        _ rejected: [(provider: String, until: ContinuousClock.Instant)], earliest: ContinuousClock.Instant,
        now: ContinuousClock.Instant = .now
    ) -> ProviderTry {
        let wall = Date()
        let wait = max(.milliseconds(1), earliest - now)
        let until = rejected.map { "\($0.provider) until \(Timestamp.string(wall.addingTimeInterval(($0.until - now).timeInterval)))" }
        return ProviderTry(
            provider: "none", startedAt: wall, finishedAt: wall, outcome: .transientFailure,
            error: "all providers' circuits are open (\(until.joined(separator: ", "))); no provider was called",
            retryAfter: wait)
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
