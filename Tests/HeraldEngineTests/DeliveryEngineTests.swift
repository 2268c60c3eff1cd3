import Foundation
import HeraldConfig
import HeraldCore
import HeraldEngine
import HeraldFilter
import Testing

/// Every branch of the engine's decisions, without servers.
@Suite struct SettleTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let policy = RetryPolicy(
        name: "t", maxAttempts: 3, initialDelay: .seconds(10), multiplier: 2, maxDelay: .seconds(60), retryAmbiguous: false,
        jitter: 0)

    static func job(fallbacks: [UUID] = [], expiresAt: Date? = nil) -> DeliveryJob {
        DeliveryJob(
            deliveryID: UUID.timeOrdered(), notificationID: UUID.timeOrdered(), channel: "c", attempt: 1,
            to: ["webhook_url": "https://a.test/"], message: .init(text: "hi"), metadata: [:], acceptedAt: now,
            fallbackIDs: fallbacks, expiresAt: expiresAt)
    }

    static func attempt(_ outcome: AttemptOutcome, error: String? = nil, retryAfter: Duration? = nil, provider: String = "p")
        -> ProviderAttempt
    {
        ProviderAttempt(
            provider: provider, startedAt: now, finishedAt: now, outcome: outcome, httpStatus: nil,
            error: error ?? (outcome == .success ? nil : "boom"), retryAfter: retryAfter)
    }

    func settle(
        _ job: DeliveryJob, _ tries: [ProviderAttempt], number: Int = 1, base: Int = 0, policy: RetryPolicy = SettleTests.policy,
        random: Double = 0
    ) -> Settlement {
        DeliveryEngine.settle(
            job: job, number: number, attemptBase: base, tries: tries, policy: policy, worker: "w", now: Self.now, random: random)
    }

    @Test func successIsSentClearsTheErrorAndCancelsFallbacks() {
        let fallback = UUID.timeOrdered()
        let job = Self.job(fallbacks: [fallback])
        let settlement = settle(job, [Self.attempt(.success)], number: 2)
        #expect(settlement.status == .sent)
        #expect(settlement.lastError == nil)
        #expect(settlement.cancel == [fallback])
        #expect(settlement.enqueue.isEmpty)
        #expect(settlement.attempts.map(\.number) == [2])
        #expect(settlement.attempts.map(\.resultingStatus) == [.sent])
    }

    @Test func transientRetriesThroughTheOutboxAfterThePolicysDelay() {
        let job = Self.job()
        let settlement = settle(job, [Self.attempt(.transientFailure, error: "HTTP 503")])
        #expect(settlement.status == .retrying)
        #expect(settlement.lastError == "HTTP 503")
        #expect(settlement.enqueue == [OutboxEnqueue(
            deliveryID: job.deliveryID, attempt: 2, notBefore: Self.now.addingTimeInterval(10), purpose: .retry)])
    }

    @Test func permanentFailsAndActivatesTheFirstFallback() {
        let first = UUID.timeOrdered(), second = UUID.timeOrdered()
        let settlement = settle(Self.job(fallbacks: [first, second]), [Self.attempt(.permanentFailure)])
        #expect(settlement.status == .failed)
        #expect(settlement.activate == [first])
        #expect(settlement.enqueue == [OutboxEnqueue(deliveryID: first, attempt: 1, notBefore: Self.now, purpose: .fallback)])
        #expect(settlement.cancel.isEmpty)
    }

    @Test func ambiguousFollowsRetryAmbiguous() {
        let job = Self.job()
        #expect(settle(job, [Self.attempt(.ambiguous)]).status == .failed)
        var lenient = Self.policy
        lenient.retryAmbiguous = true
        #expect(settle(job, [Self.attempt(.ambiguous)], policy: lenient).status == .retrying)
    }

    @Test func exhaustedAttemptsFail() {
        let settlement = settle(Self.job(), [Self.attempt(.transientFailure)], number: 3)
        #expect(settlement.status == .failed)
        #expect(settlement.enqueue.isEmpty)
    }

    @Test func aReplayGetsAFreshBudgetNumberedAfterTheOldAttempts() {
        // Five attempts before the replay; the replay's first attempt is number 6, its first of three.
        let settlement = settle(Self.job(), [Self.attempt(.transientFailure)], number: 6, base: 5)
        #expect(settlement.status == .retrying)
        #expect(settlement.enqueue.first?.attempt == 7)
        #expect(settle(Self.job(), [Self.attempt(.transientFailure)], number: 8, base: 5).status == .failed)
    }

    @Test func retryAfterIsHonouredWhenLongerThanTheDelay() {
        let settlement = settle(Self.job(), [Self.attempt(.transientFailure, retryAfter: .seconds(42))])
        #expect(settlement.enqueue.first?.notBefore == Self.now.addingTimeInterval(42))
        let short = settle(Self.job(), [Self.attempt(.transientFailure, retryAfter: .seconds(1))])
        #expect(short.enqueue.first?.notBefore == Self.now.addingTimeInterval(10))
    }

    @Test func aRetryThatWouldFallAfterExpiryExpiresInstead() {
        let fallback = UUID.timeOrdered()
        let job = Self.job(fallbacks: [fallback], expiresAt: Self.now.addingTimeInterval(5))
        let settlement = settle(job, [Self.attempt(.transientFailure)])
        #expect(settlement.status == .expired)
        #expect(settlement.enqueue.isEmpty)
        #expect(settlement.cancel == [fallback])
        #expect(settlement.attempts.count == 1)
    }

    @Test func failoverTriesAreRecordedAsOneAttempt() {
        let settlement = settle(Self.job(), [
            Self.attempt(.transientFailure, provider: "a"), Self.attempt(.success, provider: "b"),
        ])
        #expect(settlement.attempts.map(\.provider) == ["a", "b"])
        #expect(settlement.attempts.map(\.number) == [1, 1])
        #expect(settlement.attempts.map(\.resultingStatus) == [.sending, .sent])
        #expect(settlement.status == .sent)
    }

    @Test func jitterSpreadsRetriesOfABurst() {
        var policy = Self.policy
        policy.jitter = 0.5
        let delays = (0..<200).map { index in
            DeliveryEngine.retryDelay(policy: policy, attemptsInRun: 1, retryAfter: nil, random: Double(index) / 200)
        }
        // Up to half of the 10 s delay is taken off, spread evenly: 5 s to 10 s.
        #expect(delays.min()! >= .seconds(5) && delays.max()! <= .seconds(10))
        #expect(Set(delays).count > 150)
        let withoutJitter = DeliveryEngine.retryDelay(policy: Self.policy, attemptsInRun: 1, retryAfter: nil, random: 0.9)
        #expect(withoutJitter == .seconds(10))
        // The randomness reaches the outbox row.
        let early = settle(Self.job(), [Self.attempt(.transientFailure)], policy: policy, random: 0.99)
        let late = settle(Self.job(), [Self.attempt(.transientFailure)], policy: policy, random: 0.0)
        #expect(early.enqueue[0].notBefore < late.enqueue[0].notBefore)
    }

    @Test func expireAndDeferral() {
        let fallback = UUID.timeOrdered()
        let job = Self.job(fallbacks: [fallback], expiresAt: Self.now)
        let expired = DeliveryEngine.expire(job: job, now: Self.now)
        #expect(expired.status == .expired && expired.attempts.isEmpty && expired.cancel == [fallback])
        let deferred = DeliveryEngine.deferral(job: job, attempt: 3, now: Self.now, delay: .seconds(2))
        #expect(deferred.status == nil && deferred.attempts.isEmpty)
        #expect(deferred.enqueue == [OutboxEnqueue(
            deliveryID: job.deliveryID, attempt: 3, notBefore: Self.now.addingTimeInterval(2), purpose: .deferred)])
    }

    @Test func anAbandonedAttemptIsAmbiguous() {
        let job = Self.job()
        let settlement = DeliveryEngine.settleAbandoned(
            job: job, number: 2, attemptBase: 0, previousWorker: "w1", policy: Self.policy, worker: "w2", now: Self.now,
            random: 0)
        #expect(settlement.attempts.map(\.outcome) == [.ambiguous])
        #expect(settlement.attempts.first?.error?.contains("w1") == true)
        #expect(settlement.status == .failed)  // retry_ambiguous is off: never resent
    }
}

@Suite struct ClaimDecisionTests {
    let job = SettleTests.job()
    let now = SettleTests.now

    func decide(_ claim: ClaimResult?, expected: Int = 1, job: DeliveryJob? = nil) -> ClaimDecision {
        DeliveryEngine.decide(claim: claim, job: job ?? self.job, expectedAttempt: expected, now: now)
    }

    @Test func claimedIsAttempted() {
        #expect(decide(ClaimResult(claimed: true, status: .queued, attemptCount: 0)) == .attempt(number: 1, attemptBase: 0))
        #expect(decide(ClaimResult(claimed: true, status: .failed, attemptCount: 5, attemptBase: 5), expected: 6)
            == .attempt(number: 6, attemptBase: 5))
    }

    @Test func redeliveredButTerminalIsSkipped() {
        for status in DeliveryStatus.terminal {
            guard case .skip = decide(ClaimResult(claimed: false, status: status, attemptCount: 1)) else {
                Issue.record("\(status) not skipped")
                continue
            }
        }
    }

    @Test func anAttemptAlreadyMadeIsSkipped() {
        guard case .skip = decide(ClaimResult(claimed: false, status: .retrying, attemptCount: 2), expected: 2) else {
            Issue.record("not skipped")
            return
        }
    }

    @Test func anotherWorkersLeaseIsWaitedOutThenTheAttemptIsAbandoned() {
        let held = ClaimResult(claimed: false, status: .sending, attemptCount: 0, claimedBy: "w1", leaseRemaining: .seconds(3))
        #expect(decide(held) == .wait(.seconds(3)))
        let expired = ClaimResult(claimed: false, status: .sending, attemptCount: 0, claimedBy: "w1", leaseRemaining: .seconds(-1))
        #expect(decide(expired) == .abandoned(number: 1, attemptBase: 0, worker: "w1"))
    }

    @Test func pastExpiryIsExpiredAndMissingIsMissing() {
        let expiring = SettleTests.job(expiresAt: now.addingTimeInterval(-1))
        #expect(decide(ClaimResult(claimed: true, status: .queued, attemptCount: 0), job: expiring) == .expire(number: 1))
        #expect(decide(nil) == .missing)
        guard case .skip = decide(ClaimResult(claimed: false, status: .pending, attemptCount: 0)) else {
            Issue.record("pending not skipped")
            return
        }
    }

    @Test func destinationKeysAndLeases() {
        let channel = ChannelDefinition.webhook(concurrency: 64)
        var job = SettleTests.job()
        job.to = ["webhook_url": "http://Example.test:8080/x"]
        #expect(DeliveryEngine.destinationKey(job, channel: channel) == "example.test:8080")
        job.to = ["webhook_url": "https://example.test/x"]
        #expect(DeliveryEngine.destinationKey(job, channel: channel) == "example.test:443")
        #expect(channel.maxInFlightPerHost == 16)
        #expect(DeliveryEngine.lease(for: channel, providers: 0) == .seconds(20))
        #expect(DeliveryEngine.lease(for: channel, providers: 3) == .seconds(50))
    }
}

@Suite struct PlanTests {
    static func snapshot() -> ConfigSnapshot {
        ConfigSnapshot(version: "v1", registry: ChannelRegistry([
            .webhook(), ChannelDefinition(
                name: "second", recipient: RecipientField(name: "webhook_url", format: .url), concurrency: 4,
                timeout: .seconds(5), retry: .standard),
        ]))
    }

    func request(_ json: String, now: Date = SettleTests.now) throws -> NotificationRequest {
        let body = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        return try Self.snapshot().validator.validate(body, now: now).get()
    }

    @Test func everyChannelIsQueuedAtOnce() throws {
        let request = try request(#"{"channels": ["webhook", "second"], "to": {"webhook_url": "https://a.test/"}, "message": {"text": "x"}}"#)
        let planned = try DeliveryEngine.plan(request, snapshot: Self.snapshot(), now: SettleTests.now).get()
        #expect(planned.notification.deliveries.map(\.status) == [.queued, .queued])
        #expect(planned.notification.deliveries.map(\.publishAt) == [SettleTests.now, SettleTests.now])
        let job = try DeliveryJob.decode(Array(planned.notification.deliveries[0].job.utf8))
        #expect(job.message.text == "x" && job.fallbackIDs.isEmpty)
    }

    /// The day partitions hold a notification with its deliveries only if their ids carry the same
    /// instant: the first 48 bits of a UUIDv7.
    @Test func deliveryIDsCarryTheirNotificationsInstant() throws {
        let request = try request(#"{"channels": ["webhook", "second"], "to": {"webhook_url": "https://a.test/"}, "message": {"text": "x"}}"#)
        let now = Date(timeIntervalSince1970: 1_796_342_399.9995)  // the last millisecond of a UTC day
        let planned = try DeliveryEngine.plan(request, snapshot: Self.snapshot(), now: now).get()
        func instant(_ id: UUID) -> String { String(id.lowercasedString.replacingOccurrences(of: "-", with: "").prefix(12)) }
        let expected = String(UInt64(1_796_342_399_999), radix: 16).leftPadded(to: 12)
        #expect(instant(planned.notification.id) == expected)
        #expect(planned.notification.deliveries.map { instant($0.id) } == [expected, expected])
        #expect(Set(planned.notification.deliveries.map(\.id) + [planned.notification.id]).count == 3)
    }

    @Test func aFutureSendAtIsScheduledAndExpiryTravelsWithTheJob() throws {
        let request = try request(#"""
            {"channel": "webhook", "to": {"webhook_url": "https://a.test/"}, "message": {"text": "x"},
             "send_at": "2027-01-16T08:00:00Z", "expires_at": "2027-01-16T09:00:00.5+01:00"}
            """#)
        let planned = try DeliveryEngine.plan(request, snapshot: Self.snapshot(), now: SettleTests.now).get()
        let delivery = try #require(planned.notification.deliveries.first)
        #expect(delivery.status == .scheduled)
        #expect(delivery.publishAt == Timestamp.parse("2027-01-16T08:00:00Z"))
        let job = try DeliveryJob.decode(Array(delivery.job.utf8))
        #expect(job.expiresAt == Timestamp.parse("2027-01-16T08:00:00.500Z"))
    }

    @Test func badSchedulesAndNulCharactersAreRefusedNamingTheField() throws {
        let body = try JSONDecoder().decode(JSONValue.self, from: Data(#"""
            {"channel": "webhook", "to": {"webhook_url": "https://a.test/"}, "message": {"text": "a\u0000b"},
             "metadata": {"k\u0000": 1, "list": ["ok", "x\u0000"]}, "send_at": "tomorrow", "expires_at": "2001-01-01T00:00:00Z"}
            """#.utf8))
        guard case .failure(let failure) = Self.snapshot().validator.validate(body, now: SettleTests.now) else {
            Issue.record("accepted")
            return
        }
        let fields = Set(failure.errors.map(\.field))
        #expect(fields.isSuperset(of: ["message.text", "metadata.k\\u0000", "metadata.list.1", "send_at", "expires_at"]))
    }

    @Test func fallbackQueuesTheFirstAndChainsTheRest() throws {
        var snapshot = Self.snapshot()
        snapshot.rules = [RoutingRule(name: "r", filter: .matchAll, channels: ["webhook", "second"], strategy: .fallback, location: "t")]
        let body = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"to": {"webhook_url": "https://a.test/"}, "message": {"text": "x"}}"#.utf8))
        let request = try snapshot.validator.validate(body, now: SettleTests.now).get()
        let planned = try DeliveryEngine.plan(request, snapshot: snapshot, now: SettleTests.now).get()
        let deliveries = planned.notification.deliveries
        #expect(deliveries.map(\.status) == [.queued, .pending])
        #expect(deliveries[1].publishAt == nil)
        let first = try DeliveryJob.decode(Array(deliveries[0].job.utf8))
        #expect(first.fallbackIDs == [deliveries[1].id])
    }
}

/// A provider's "slow down": recorded, not spent, bounded.
@Suite struct ThrottleSettleTests {
    @Test func aThrottledAttemptIsRecordedAndMadeAgainUnderTheSameNumber() {
        let job = SettleTests.job()
        let settlement = DeliveryEngine.settle(
            job: job, number: 2, attemptBase: 0, tries: [SettleTests.attempt(.throttled, error: "HTTP 429", retryAfter: .milliseconds(1500))],
            policy: SettleTests.policy, worker: "w", now: SettleTests.now, random: 0, throttledBefore: 3)
        #expect(settlement.status == .queued)
        #expect(!settlement.spendsAttempt)
        #expect(settlement.attempts.map(\.outcome) == [.throttled])
        #expect(settlement.attempts.map(\.number) == [2])
        #expect(settlement.enqueue == [OutboxEnqueue(
            deliveryID: job.deliveryID, attempt: 2, notBefore: SettleTests.now.addingTimeInterval(1.5), purpose: .throttled)])
        #expect(settlement.lastError?.contains("not counted") == true)
    }

    @Test func aThrottleWithoutRetryAfterWaitsASecond() {
        let settlement = DeliveryEngine.settle(
            job: SettleTests.job(), number: 1, attemptBase: 0, tries: [SettleTests.attempt(.throttled)], policy: SettleTests.policy,
            worker: "w", now: SettleTests.now, random: 0)
        #expect(settlement.enqueue.first?.notBefore == SettleTests.now.addingTimeInterval(1))
    }

    @Test func aProviderThatThrottlesForEverSpendsTheAttemptAtLast() {
        let settlement = DeliveryEngine.settle(
            job: SettleTests.job(), number: 1, attemptBase: 0, tries: [SettleTests.attempt(.throttled, error: "HTTP 429")],
            policy: SettleTests.policy, worker: "w", now: SettleTests.now, random: 0,
            throttledBefore: DeliveryEngine.maximumThrottles - 1)
        #expect(settlement.spendsAttempt)
        #expect(settlement.status == .retrying)
        #expect(settlement.attempts.map(\.outcome) == [.transientFailure])
        #expect(settlement.enqueue.first?.attempt == 2)
    }

    @Test func aThrottleThatWouldOutliveTheNotificationExpiresIt() {
        let job = SettleTests.job(expiresAt: SettleTests.now.addingTimeInterval(5))
        let settlement = DeliveryEngine.settle(
            job: job, number: 1, attemptBase: 0, tries: [SettleTests.attempt(.throttled, retryAfter: .seconds(30))],
            policy: SettleTests.policy, worker: "w", now: SettleTests.now, random: 0)
        #expect(settlement.status == .expired)
        #expect(settlement.enqueue.isEmpty)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
