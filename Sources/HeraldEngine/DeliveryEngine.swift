import Foundation
import HeraldCore

/// Every decision about a delivery, as pure functions: what to store for a new notification
/// (`plan`), whether a received message may be attempted (`decide`), and what an attempt leaves
/// behind (`settle`). Workers and the gateway only execute what these return, so each branch is
/// unit-tested without servers.
public enum DeliveryEngine {}

/// One try through one provider within an attempt (failover makes several).
public struct ProviderAttempt: Sendable, Hashable {
    public var provider: String
    public var startedAt: Date
    public var finishedAt: Date
    public var outcome: AttemptOutcome
    public var httpStatus: Int?
    public var error: String?
    public var providerMessageID: String?
    /// The provider asked to wait this long (`Retry-After`).
    public var retryAfter: Duration?

    public init(
        provider: String, startedAt: Date, finishedAt: Date, outcome: AttemptOutcome, httpStatus: Int? = nil,
        error: String? = nil, providerMessageID: String? = nil, retryAfter: Duration? = nil
    ) {
        self.provider = provider
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.httpStatus = httpStatus
        self.error = error
        self.providerMessageID = providerMessageID
        self.retryAfter = retryAfter
    }
}

/// What a worker does with a received message, given what its claim found in the database.
public enum ClaimDecision: Sendable, Hashable {
    /// Attempt it now as attempt `number`; `attemptBase` attempts belong to earlier runs (replays);
    /// the provider throttled `throttled` earlier tries of this attempt.
    case attempt(number: Int, attemptBase: Int, throttled: Int = 0)
    /// Ack without sending: the delivery is terminal, cancelled, or this attempt already happened
    /// (a redelivery, or a second copy from the outbox).
    case skip(reason: String)
    /// Another worker holds the delivery; ask again after this long (its lease runs out by then).
    case wait(Duration)
    /// The worker that held the delivery stopped mid-attempt (its lease ran out): settle that
    /// attempt as ambiguous — the provider may have received it — and let the policy decide.
    case abandoned(number: Int, attemptBase: Int, worker: String)
    /// Claimed, but past `expires_at`: settle as expired without sending.
    case expire(number: Int)
    /// The delivery is not in the database (it never was, or was deleted): nothing to do.
    case missing
}

extension DeliveryEngine {
    /// The longest a worker holds a message while another worker's lease runs out.
    static let maximumWait: Duration = .seconds(30)

    public static func decide(claim: ClaimResult?, job: DeliveryJob, expectedAttempt: Int, now: Date) -> ClaimDecision {
        guard let claim else { return .missing }
        if claim.claimed {
            if let expiresAt = job.expiresAt, now >= expiresAt { return .expire(number: expectedAttempt) }
            return .attempt(number: expectedAttempt, attemptBase: claim.attemptBase, throttled: claim.throttledTries)
        }
        if claim.status.isTerminal { return .skip(reason: "the delivery is already \(claim.status.rawValue)") }
        if claim.attemptCount >= expectedAttempt {
            return .skip(reason: "attempt \(expectedAttempt) was already made (attempts recorded: \(claim.attemptCount))")
        }
        switch claim.status {
        case .sending:
            let remaining = claim.leaseRemaining ?? .zero
            if remaining > .zero { return .wait(min(remaining, maximumWait)) }
            return .abandoned(number: claim.attemptCount + 1, attemptBase: claim.attemptBase, worker: claim.claimedBy ?? "unknown")
        case .pending:
            return .skip(reason: "the delivery is pending (its earlier channel has not failed): not yet its turn")
        default:
            // Claimable but not claimed: the claim raced with another change. Ask again shortly.
            return .wait(.milliseconds(200))
        }
    }

    /// What attempt `number` of `job` leaves in the database, given the providers' tries.
    ///
    /// - success → `sent`, `last_error` cleared, pending fallbacks cancelled;
    /// - transient (or ambiguous with `retry_ambiguous`) with attempts left → `retrying` and an outbox
    ///   row for attempt `number + 1` after the policy's delay, shortened at random by up to `jitter`
    ///   (`random` in 0..<1), and never sooner than the provider's `Retry-After`;
    /// - the same but the next attempt would fall after `expires_at` → `expired`;
    /// - otherwise → `failed`, and the first fallback delivery, if any, is activated;
    /// - throttled (429), fewer than `maximumThrottles` times for this attempt → `queued` and an outbox
    ///   row for the same attempt number once the provider said it may be tried (`Retry-After`, at
    ///   least a second): the attempt is recorded but not spent. Past the bound it counts as transient.
    public static func settle(
        job: DeliveryJob, number: Int, attemptBase: Int, tries: [ProviderAttempt], policy: RetryPolicy,
        worker: String, now: Date, random: Double, throttledBefore: Int = 0
    ) -> Settlement {
        var tries = tries
        let lastTry = tries.last ?? ProviderAttempt(
            provider: "none", startedAt: now, finishedAt: now, outcome: .permanentFailure, error: "the channel has no provider")
        if lastTry.outcome == .throttled {
            if throttledBefore + 1 < maximumThrottles {
                return throttled(job: job, number: number, tries: tries, worker: worker, now: now)
            }
            // A provider that throttles for ever: this attempt is spent like any transient failure.
            tries[tries.count - 1].outcome = .transientFailure
            tries[tries.count - 1].error = (lastTry.error ?? "throttled") + " (throttled \(throttledBefore + 1) times: counted as a failed attempt)"
        }
        let final = tries.last ?? lastTry
        let attemptsInRun = number - attemptBase
        var status: DeliveryStatus
        var lastError: String? = final.error ?? (final.outcome == .success ? nil : "failed with outcome \(final.outcome.rawValue)")
        var enqueue: [OutboxEnqueue] = []
        var activate: [UUID] = []
        var cancel: [UUID] = []

        switch policy.decide(outcome: final.outcome, attempt: attemptsInRun) {
        case .finish(let finished):
            status = finished
        case .retry:
            let delay = retryDelay(policy: policy, attemptsInRun: attemptsInRun, retryAfter: final.retryAfter, random: random)
            let next = now.addingTimeInterval(delay.timeInterval)
            if let expiresAt = job.expiresAt, next >= expiresAt {
                status = .expired
                lastError = "expires before the next attempt could be made; last error: \(lastError ?? "none")"
            } else {
                status = .retrying
                enqueue.append(OutboxEnqueue(deliveryID: job.deliveryID, attempt: number + 1, notBefore: next, purpose: .retry))
            }
        }
        switch status {
        case .sent:
            lastError = nil
            cancel = job.fallbackIDs
        case .failed:
            if let next = job.fallbackIDs.first {
                activate = [next]
                enqueue.append(OutboxEnqueue(deliveryID: next, attempt: 1, notBefore: now, purpose: .fallback))
            }
        case .expired:
            cancel = job.fallbackIDs
        default:
            break
        }
        return Settlement(
            deliveryID: job.deliveryID, attempts: records(job: job, number: number, tries: tries, status: status, worker: worker),
            status: status, lastError: lastError, enqueue: enqueue,
            activate: activate, cancel: cancel)
    }

    /// Tries of one attempt a provider may throttle before the attempt counts as failed: with waits of a
    /// second or more, minutes of "slow down" before a delivery's retry budget is touched.
    public static let maximumThrottles = 30

    /// The provider asked to slow down: the tries are recorded, the same attempt goes back to the outbox
    /// for when the provider said it may be tried, and nothing is spent.
    static func throttled(job: DeliveryJob, number: Int, tries: [ProviderAttempt], worker: String, now: Date) -> Settlement {
        let final = tries[tries.count - 1]
        let wait = max(.seconds(1), min(final.retryAfter ?? .seconds(1), .seconds(3600)))
        let next = now.addingTimeInterval(wait.timeInterval)
        if let expiresAt = job.expiresAt, next >= expiresAt {
            return Settlement(
                deliveryID: job.deliveryID, attempts: records(job: job, number: number, tries: tries, status: .expired, worker: worker),
                status: .expired,
                lastError: "expires before the provider accepts more (throttled: \(final.error ?? "429"))", cancel: job.fallbackIDs,
                spendsAttempt: false)
        }
        return Settlement(
            deliveryID: job.deliveryID, attempts: records(job: job, number: number, tries: tries, status: .queued, worker: worker),
            status: .queued,
            lastError: "throttled by \(final.provider) (\(final.error ?? "429")); attempt \(number) is made again after \(wait), not counted",
            enqueue: [OutboxEnqueue(deliveryID: job.deliveryID, attempt: number, notBefore: next, purpose: .throttled)],
            spendsAttempt: false)
    }

    /// The attempt log rows of one attempt: earlier tries were failover steps, the last one decided.
    static func records(job: DeliveryJob, number: Int, tries: [ProviderAttempt], status: DeliveryStatus, worker: String) -> [AttemptRecord] {
        tries.enumerated().map { index, providerTry in
            AttemptRecord(
                deliveryID: job.deliveryID, notificationID: job.notificationID, number: number,
                startedAt: providerTry.startedAt, finishedAt: providerTry.finishedAt, outcome: providerTry.outcome,
                httpStatus: providerTry.httpStatus, error: providerTry.error, providerMessageID: providerTry.providerMessageID,
                resultingStatus: index == tries.count - 1 ? status : .sending,
                worker: worker, provider: providerTry.provider, channel: job.channel, tenant: job.tenant)
        }
    }

    /// The wait before the next attempt: the policy's delay for this attempt, shortened at random by
    /// up to `jitter` of itself so that a burst of failures doesn't come back as a burst, and never
    /// shorter than what the provider asked for (capped at an hour).
    public static func retryDelay(policy: RetryPolicy, attemptsInRun: Int, retryAfter: Duration?, random: Double) -> Duration {
        let base = policy.delay(afterAttempt: attemptsInRun)
        let jitter = min(max(policy.jitter, 0), 1)
        let fraction = 1 - jitter * min(max(random, 0), 1)
        var delay = Duration.milliseconds(Int64((Double(base.milliseconds) * fraction).rounded()))
        if let retryAfter { delay = max(delay, min(retryAfter, .seconds(3600))) }
        return delay
    }

    /// A claimed delivery past its `expires_at`: `expired`, nothing sent, nothing recorded as an attempt.
    public static func expire(job: DeliveryJob, now: Date) -> Settlement {
        let when = job.expiresAt.map(Timestamp.string) ?? "its expiry"
        // The notification expired, so later channels would be just as late: their turn never comes.
        return Settlement(
            deliveryID: job.deliveryID, status: .expired, lastError: "expired at \(when) before it could be sent",
            cancel: job.fallbackIDs)
    }

    /// The attempt a stopped worker left unrecorded: ambiguous, since the provider may have
    /// received it. The policy decides whether it is tried again (`retry_ambiguous`).
    public static func settleAbandoned(
        job: DeliveryJob, number: Int, attemptBase: Int, previousWorker: String, policy: RetryPolicy, worker: String,
        now: Date, random: Double
    ) -> Settlement {
        let abandoned = ProviderAttempt(
            provider: "unknown", startedAt: now, finishedAt: now, outcome: .ambiguous,
            error: "worker \(previousWorker) stopped during attempt \(number); the provider may have received it")
        return settle(
            job: job, number: number, attemptBase: attemptBase, tries: [abandoned], policy: policy, worker: worker, now: now,
            random: random)
    }

    /// Puts a message back into the outbox for later without attempting it (its destination host
    /// has too many attempts in flight); the delivery's status and attempts stay as they are.
    public static func deferral(job: DeliveryJob, attempt: Int, now: Date, delay: Duration) -> Settlement {
        Settlement(
            deliveryID: job.deliveryID, status: nil,
            enqueue: [OutboxEnqueue(deliveryID: job.deliveryID, attempt: attempt, notBefore: now.addingTimeInterval(delay.timeInterval), purpose: .deferred)])
    }
}

extension DeliveryEngine {
    /// The destination a per-host bound counts against: `host:port` (lower-cased) of a URL recipient,
    /// nil for other channels or an unreadable URL.
    public static func destinationKey(_ job: DeliveryJob, channel: ChannelDefinition) -> String? {
        guard channel.recipient.format == .url, let text = job.to[channel.recipient.name]?.stringValue,
            let components = URLComponents(string: text), let host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        let port = components.port ?? (components.scheme?.lowercased() == "http" ? 80 : 443)
        return "\(host):\(port)"
    }

    /// How long a worker's claim holds: long enough for every provider of the channel to time out once.
    public static func lease(for channel: ChannelDefinition, providers: Int) -> Duration {
        channel.timeout * max(1, providers) + .seconds(5)
    }
}
