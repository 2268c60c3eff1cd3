import Foundation
import HeraldBroker
import HeraldConfig
import HeraldCore
import HeraldEngine
import HeraldHTTPRuntime
import HeraldMessaging
import HeraldProviderModel
import HeraldProviders
import HeraldStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Consumes one channel's queue. For each message: claim the delivery (the database says whether
/// this attempt may run — a redelivered or duplicate message of a delivery already sent, cancelled
/// or attempted is acked without sending), attempt it through the channel's providers, settle the
/// outcome (attempts, status, retry or fallback rows in the outbox) in one transaction, then ack.
/// What to do is decided by `DeliveryEngine`; this type only carries it out. A message whose outcome
/// could not be recorded is requeued, never dropped, and the outcome is kept to be recorded when it
/// comes back instead of sending again.
///
/// The channel's definition is read from the configuration in force when each attempt starts, so a
/// reload changes the next attempt and never one in flight.
final class ChannelWorker: Service, Sendable {
    let channelName: String
    let config: ConfigStore
    let consumer: BrokerConsumer
    let shared: WorkerShared
    let logger: Logger
    /// The channel's pace on this replica: its rate limit, lowered while the provider throttles.
    private let shaper = Mutex(ChannelShaper(nil))
    private let hosts = HostLimiter()

    init(channelName: String, config: ConfigStore, consumer: BrokerConsumer, shared: WorkerShared, logger: Logger) {
        self.channelName = channelName
        self.config = config
        self.consumer = consumer
        self.shared = shared
        var logger = logger
        logger[metadataKey: "herald.channel"] = "\(channelName)"
        self.logger = logger
    }

    func run() async throws {
        // Slots are fixed at start; a reload that changes concurrency takes effect on restart.
        let concurrency = max(1, config.snapshot.registry[channelName]?.concurrency ?? 1)
        logger.info("worker started", metadata: ["concurrency": "\(concurrency)"])
        // On graceful shutdown the consumer stops handing out messages (its waiting slots get nil) and
        // the slots finish the message they hold. Once for the worker, not a race against shutdown
        // around every `next()` (a task group and two tasks per message).
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<concurrency {
                    group.addTask { await self.slotLoop() }
                }
            }
        } onGracefulShutdown: {
            self.consumer.stopDelivering()
        }
        logger.info("worker stopped")
    }

    /// One slot: takes a message only when it is free, so in-flight work is bounded by the slots.
    private func slotLoop() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let message: IncomingMessage?
            do {
                message = try await consumer.next()
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                logger.warning("receiving failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            guard let message else { return }
            await process(message)
        }
    }

    func process(_ message: IncomingMessage) async {
        var decoded: DeliveryJob
        do {
            decoded = try DeliveryJob.decode(message.body)
        } catch {
            await quarantine(message, reason: "the message is not a delivery job: \(error)")
            return
        }
        // The message's trace header goes into every line about it and on to the provider request.
        let trace = DeliveryTopology.trace(of: message, job: decoded)
        decoded.traceparent = trace?.traceparent
        let job = decoded
        // The message's keys go into the handler in one assignment: a log handler may do work per
        // change (StreamLogHandler formats its whole metadata again on each), and this is every
        // delivery's path.
        var metadata = logger.handler.metadata
        metadata["herald.delivery_id"] = "\(job.deliveryID.lowercasedString)"
        metadata["herald.notification_id"] = "\(job.notificationID.lowercasedString)"
        metadata["herald.channel"] = "\(job.channel)"
        if let trace { metadata["trace.id"] = "\(trace.traceID)" }
        let expectedAttempt = DeliveryTopology.attempt(of: message, job: job)
        let snapshot = config.snapshot
        let channel = snapshot.registry[job.channel]
        // A Web Push subscription is an object: its endpoint stands for it.
        if let channel,
            let recipient = job.to[channel.recipient.name]?.stringValue ?? job.to[channel.recipient.name]?["endpoint"]?.stringValue
        {
            metadata["herald.recipient"] = "\(channel.recipient.masked(recipient))"
        }
        var logger = logger
        logger.handler.metadata = metadata
        guard let channel else {
            // The channel was removed from the configuration: keep the message rather than guess.
            logger.error("no definition for the channel; message requeued")
            try? await Task.sleep(for: .seconds(1))
            consumer.reject(message.deliveryTag, requeue: true)
            return
        }
        // An outcome this process could not record before: record it now instead of sending again.
        if let unrecorded = shared.unrecorded.take(job.deliveryID) {
            await commit(unrecorded, message: message, logger: logger)
            return
        }
        // One destination host may not take every slot. Over its bound the slot waits a little for one
        // of that host's attempts to finish (a fast host frees one within milliseconds); a host whose
        // attempts don't finish in that time is slow or hanging, and the message waits in the outbox
        // instead, so the slot goes to other hosts. Bouncing every message over the bound through the
        // outbox cost a single busy receiver several database and broker round trips per delivery.
        let host = DeliveryEngine.destinationKey(job, channel: channel)
        if let host, let limit = channel.maxInFlightPerHost,
            await !hosts.acquire(host, limit: limit, waitingAtMost: shared.hostWait)
        {
            deferred.increment()
            let delay = Duration.milliseconds(Int64(Double(shared.hostDeferral.milliseconds) * Double.random(in: 0.5..<1.5)))
            await commit(DeliveryEngine.deferral(job: job, attempt: expectedAttempt, now: Date(), delay: delay), message: message, logger: logger)
            return
        }
        defer { if let host, channel.maxInFlightPerHost != nil { hosts.release(host) } }

        // The channel's pace, before the claim: a wait here holds no lease.
        guard await waitForTurn(channel) else {
            consumer.reject(message.deliveryTag, requeue: true)
            return
        }

        let providers = snapshot.providers(for: channel.name)
        let lease = DeliveryEngine.lease(for: channel, providers: providers.count)
        var decision: ClaimDecision
        var waited: Duration = .zero
        while true {
            let claim: ClaimResult?
            do {
                claim = try await shared.claimer.submit(
                    ClaimRequest(deliveryID: job.deliveryID, attempt: expectedAttempt, lease: lease), deadline: .seconds(10),
                    operation: "claiming the delivery")
            } catch {
                logger.warning("could not claim the delivery; the message goes back to the queue", metadata: [
                    "error": "\(StoreFailure.describe(error))",
                ])
                try? await Task.sleep(for: .seconds(1))
                consumer.reject(message.deliveryTag, requeue: true)
                return
            }
            decision = DeliveryEngine.decide(claim: claim, job: job, expectedAttempt: expectedAttempt, now: Date())
            guard case .wait(let pause) = decision else { break }
            if waited > lease + .seconds(5) || Task.isShuttingDownGracefully {
                consumer.reject(message.deliveryTag, requeue: true)
                return
            }
            try? await Task.sleep(for: pause)
            waited += pause
        }

        let now = Date()
        switch decision {
        case .skip(let reason):
            skipped.increment()
            logger.info("message acked without sending", metadata: ["reason": "\(reason)", "herald.attempt": "\(expectedAttempt)"])
            consumer.ack(message.deliveryTag)
        case .missing:
            skipped.increment()
            logger.error("message for a delivery that is not in the database acked without sending")
            consumer.ack(message.deliveryTag)
        case .wait:
            consumer.reject(message.deliveryTag, requeue: true)
        case .expire:
            await commit(DeliveryEngine.expire(job: job, now: now), message: message, logger: logger)
        case .abandoned(let number, let base, let previous):
            logger.warning("settling an attempt a stopped worker left unrecorded as ambiguous", metadata: [
                "herald.attempt": "\(number)", "previous_worker": "\(previous)",
            ])
            await commit(
                DeliveryEngine.settleAbandoned(
                    job: job, number: number, attemptBase: base, previousWorker: previous, policy: channel.retry,
                    worker: shared.workerName, now: now, random: Double.random(in: 0..<1)),
                message: message, logger: logger)
        case .attempt(let number, let base, let throttled):
            var attemptJob = job
            attemptJob.attempt = number
            let inFlight = Self.attemptsInFlight[channel.name]
            inFlight.increment()
            let tries = await shared.attempter.attempt(
                attemptJob, channel: channel, providers: providers, snapshotVersion: snapshot.version)
            inFlight.decrement()
            if let last = tries.last {
                let now = ContinuousClock.now
                shaper.withLock { shaper in
                    if last.outcome == .throttled { shaper.throttled(now: now, retryAfter: last.retryAfter) }
                    else if last.outcome == .success { shaper.succeeded() }
                }
                if last.outcome == .throttled {
                    logger.info("the provider throttled the channel; it slows down", metadata: [
                        "provider": "\(last.provider)", "retry_after": "\(last.retryAfter.map { "\($0)" } ?? "-")",
                        "rate_per_second": "\(shaper.withLock { $0.rate }.map { "\($0)" } ?? "unlimited")",
                    ])
                }
            }
            let settlement = DeliveryEngine.settle(
                job: attemptJob, number: number, attemptBase: base, tries: tries, policy: channel.retry,
                worker: shared.workerName, now: Date(), random: Double.random(in: 0..<1), throttledBefore: throttled)
            await commit(settlement, message: message, logger: logger)
        }
    }

    static let attemptsInFlight = HandleCache<String, Meter> { Meter(label: "herald_attempts_in_flight", dimensions: [("channel", $0)]) }
    static let rateLimitWaits = HandleCache<String, Counter> { Counter(label: "herald_rate_limit_waits_total", dimensions: [("channel", $0)]) }
    private let skipped = Counter(label: "herald_messages_skipped_total")
    private let deferred = Counter(label: "herald_messages_deferred_total")
    private let poisoned = Counter(label: "herald_poison_messages_total")

    /// Records the settlement, then acks. On failure the message is requeued and the settlement kept
    /// for its return, so the provider is not called twice for one attempt.
    private func commit(_ settlement: Settlement, message: IncomingMessage, logger: Logger) async {
        do {
            try await shared.recorder.submit(settlement, deadline: .seconds(20), operation: "recording the outcome")
            shared.reporting.report(settlement, logger: logger)
            if !settlement.enqueue.isEmpty { shared.relay?.wake() }
            consumer.ack(message.deliveryTag)
        } catch {
            if !settlement.attempts.isEmpty { shared.unrecorded.put(settlement) }
            logger.error("could not record the outcome; the message goes back to the queue", metadata: [
                "error": "\(StoreFailure.describe(error))",
            ])
            try? await Task.sleep(for: .seconds(1))
            consumer.reject(message.deliveryTag, requeue: true)
        }
    }

    /// A message that can never be processed: kept in the database for inspection and acked, so the
    /// queue moves on. If it can't be stored now, it goes back to the queue.
    private func quarantine(_ message: IncomingMessage, reason: String) async {
        do {
            let store = shared.store
            let channel = channelName
            try await withDeadline(.seconds(10), "storing a poison message") {
                try await store.recordPoison(channel: channel, body: message.body, messageID: message.messageID, reason: reason)
            }
            poisoned.increment()
            logger.error("undecodable message moved to poison_messages", metadata: [
                "reason": "\(reason)", "message_id": "\(message.messageID ?? "-")",
            ])
            consumer.ack(message.deliveryTag)
        } catch {
            logger.error("could not store a poison message; it goes back to the queue", metadata: [
                "error": "\(StoreFailure.describe(error))",
            ])
            try? await Task.sleep(for: .seconds(1))
            consumer.reject(message.deliveryTag, requeue: true)
        }
    }

    /// Waits until the channel's shaper lets an attempt start. False when the worker is shutting down
    /// meanwhile (the message goes back to the queue). Reads the channel's rate limit from the
    /// configuration in force, so a reload applies to the next attempt.
    private func waitForTurn(_ channel: ChannelDefinition) async -> Bool {
        shaper.withLock { $0 = $0.reconfigured(channel.rateLimit) }
        var waited = false
        while true {
            let wait = shaper.withLock { $0.admit(now: .now) }
            guard let wait else {
                if waited { Self.rateLimitWaits[channel.name].increment() }
                return true
            }
            waited = true
            if Task.isShuttingDownGracefully || Task.isCancelled { return false }
            // In steps of at most a second, so a shutdown is noticed.
            try? await Task.sleep(for: min(wait, .seconds(1)))
        }
    }
}

/// Counts attempts in flight per destination host. Over the bound a caller may wait a bounded time
/// for a slot of that host: a release hands its slot straight to the longest waiter.
final class HostLimiter: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Bool, Never>
        var timer: DeadlineTimer.Token?
    }

    private struct State {
        var inFlight: [String: Int] = [:]
        var waiters: [String: [Waiter]] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    let timer: DeadlineTimer

    init(timer: DeadlineTimer = .shared) { self.timer = timer }

    func tryAcquire(_ host: String, limit: Int) -> Bool {
        state.withLock { Self.take(host, limit: limit, &$0) }
    }

    /// A slot for `host`, waiting at most `wait` for one (in arrival order); false: none in time.
    func acquire(_ host: String, limit: Int, waitingAtMost wait: Duration) async -> Bool {
        if tryAcquire(host, limit: limit) { return true }
        guard wait > .zero else { return false }
        return await withCheckedContinuation { continuation in
            let id: UInt64? = state.withLock { state in
                // Freed between the two looks: take it now.
                if Self.take(host, limit: limit, &state) { return nil }
                state.nextID &+= 1
                state.waiters[host, default: []].append(Waiter(id: state.nextID, continuation: continuation, timer: nil))
                return state.nextID
            }
            guard let id else {
                continuation.resume(returning: true)
                return
            }
            let token = timer.schedule(at: .now + wait) { [weak self] in self?.giveUp(host, id: id) }
            let lost = state.withLock { state -> Bool in
                guard let index = state.waiters[host]?.firstIndex(where: { $0.id == id }) else { return true }
                state.waiters[host]?[index].timer = token
                return false
            }
            // Handed a slot before the timer was set: the timer has nothing to do.
            if lost { timer.cancel(token) }
        }
    }

    func release(_ host: String) {
        let handedTo: Waiter? = state.withLock { state in
            if var queue = state.waiters[host], !queue.isEmpty {
                let first = queue.removeFirst()
                state.waiters[host] = queue.isEmpty ? nil : queue
                return first  // the slot passes on: the count stays
            }
            let remaining = state.inFlight[host, default: 1] - 1
            state.inFlight[host] = remaining > 0 ? remaining : nil
            return nil
        }
        if let handedTo {
            if let token = handedTo.timer { timer.cancel(token) }
            handedTo.continuation.resume(returning: true)
        }
    }

    func count(_ host: String) -> Int { state.withLock { $0.inFlight[host, default: 0] } }

    private func giveUp(_ host: String, id: UInt64) {
        let waiter: Waiter? = state.withLock { state in
            guard var queue = state.waiters[host], let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = queue.remove(at: index)
            state.waiters[host] = queue.isEmpty ? nil : queue
            return waiter
        }
        waiter?.continuation.resume(returning: false)
    }

    private static func take(_ host: String, limit: Int, _ state: inout State) -> Bool {
        let current = state.inFlight[host, default: 0]
        guard current < limit else { return false }
        state.inFlight[host] = current + 1
        return true
    }
}

/// Settlements whose recording failed, kept until their message comes back.
final class UnrecordedSettlements: Sendable {
    private let byDelivery = Mutex<[UUID: Settlement]>([:])

    func put(_ settlement: Settlement) {
        byDelivery.withLock { entries in
            // Bounded: this is a safety net for short database outages, not a store.
            if entries.count >= 10_000 { entries.removeAll() }
            entries[settlement.deliveryID] = settlement
        }
    }

    func take(_ id: UUID) -> Settlement? { byDelivery.withLock { $0.removeValue(forKey: id) } }
}
