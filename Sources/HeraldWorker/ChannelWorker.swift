import Foundation
import HeraldBroker
import HeraldConfig
import HeraldCore
import HeraldHTTPRuntime
import HeraldMessaging
import HeraldProviders
import HeraldStore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Consumes one channel's queue: attempts each delivery through the channel's providers, records
/// every attempt, schedules a retry, falls back or dead-letters, and only then acks. A message whose
/// outcome could not be recorded is requeued, never dropped: delivery is at-least-once.
///
/// The channel's definition is read from the configuration in force when each attempt starts, so a
/// reload changes the next attempt and never one in flight.
final class ChannelWorker: Service, Sendable {
    let channelName: String
    let config: ConfigStore
    let consumer: BrokerConsumer
    let shared: WorkerShared
    let logger: Logger
    private let rateLimiter = Mutex<RateLimiter?>(nil)

    init(channelName: String, config: ConfigStore, consumer: BrokerConsumer, shared: WorkerShared, logger: Logger) {
        self.channelName = channelName
        self.config = config
        self.consumer = consumer
        self.shared = shared
        var logger = logger
        logger[metadataKey: "channel"] = "\(channelName)"
        self.logger = logger
    }

    func run() async throws {
        // Slots are fixed at start; a reload that changes concurrency takes effect on restart.
        let concurrency = max(1, config.snapshot.registry[channelName]?.concurrency ?? 1)
        logger.info("worker started", metadata: ["concurrency": "\(concurrency)"])
        await withDiscardingTaskGroup { group in
            for _ in 0..<concurrency {
                group.addTask { await self.slotLoop() }
            }
        }
        logger.info("worker stopped")
    }

    /// One slot: takes a message only when it is free, so in-flight work is bounded by the slots.
    private func slotLoop() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let message: IncomingMessage?
            do {
                message = try await cancelWhenGracefulShutdown { try await self.consumer.next() }
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
        let job: DeliveryJob
        do {
            job = try DeliveryJob.decode(message.body)
        } catch {
            // Poison: it can never succeed. Rejected without requeue, it dead-letters for inspection.
            logger.error("undecodable delivery message rejected to the dead-letter queue", metadata: ["error": "\(error)"])
            consumer.reject(message.deliveryTag, requeue: false)
            return
        }
        let snapshot = config.snapshot
        guard let channel = snapshot.registry[job.channel] else {
            // The channel was removed from the configuration: keep the message rather than guess.
            logger.error("no definition for the channel; message requeued", metadata: ["delivery": "\(job.deliveryID)"])
            try? await Task.sleep(for: .seconds(1))
            consumer.reject(message.deliveryTag, requeue: true)
            return
        }
        await waitForRateLimit(channel)
        let tries = await shared.attempter.attempt(job, channel: channel, snapshotVersion: snapshot.version)
        let final = tries.last ?? ProviderTry(provider: "none", startedAt: Date(), finishedAt: Date(), result: .init(
            outcome: .permanentFailure, httpStatus: nil, error: "the channel has no provider", providerMessageID: nil, retryAfter: nil))
        var decision = channel.retry.decide(outcome: final.result.outcome, attempt: job.attempt)
        if case .retry(let delay) = decision, let retryAfter = final.result.retryAfter, retryAfter > delay {
            decision = .retry(after: channel.retry.delayTiers.first { $0 >= retryAfter } ?? channel.retry.delayTiers.last ?? delay)
        }
        var outcome = OutcomeRecord(attempts: tries.enumerated().map { index, providerTry in
            AttemptRecord(
                deliveryID: job.deliveryID, notificationID: job.notificationID, number: job.attempt,
                startedAt: providerTry.startedAt, finishedAt: providerTry.finishedAt, outcome: providerTry.result.outcome,
                httpStatus: providerTry.result.httpStatus, error: providerTry.result.error,
                providerMessageID: providerTry.result.providerMessageID,
                // Only the last provider's try decides the delivery's status.
                resultingStatus: index == tries.count - 1 ? decision.resultingStatus : .sending,
                worker: shared.workerName, provider: providerTry.provider)
        })
        if decision.resultingStatus == .sent && !job.fallbacks.isEmpty {
            outcome.cancelledDeliveries = job.fallbacks.map(\.deliveryID)
        }
        for providerTry in tries {
            Counter(label: "herald_attempts_total", dimensions: [
                ("channel", channel.name), ("provider", providerTry.provider), ("outcome", providerTry.result.outcome.rawValue),
            ]).increment()
        }
        do {
            try await shared.recorder.submit(outcome)
            switch decision {
            case .retry(let delay):
                var next = job
                next.attempt += 1
                try await shared.publisher.publish([DeliveryTopology.retryMessage(for: next, delay: delay)])
            case .finish(.failed):
                var messages = [try DeliveryTopology.deadLetterMessage(
                    for: job, reason: final.result.error ?? "failed with outcome \(final.result.outcome.rawValue)")]
                if var next = job.fallbacks.first {
                    // Fallback routing: the next channel gets its turn now that this one failed for good.
                    next.fallbacks = Array(job.fallbacks.dropFirst())
                    messages.append(DeliveryTopology.deliveryMessage(
                        channel: next.channel, deliveryID: next.deliveryID.lowercasedString, payload: try next.encoded()))
                }
                try await shared.publisher.publish(messages)
            case .finish:
                break
            }
            consumer.ack(message.deliveryTag)
        } catch {
            logger.error(
                "could not record the outcome; the message goes back to the queue",
                metadata: ["delivery": "\(job.deliveryID)", "error": "\(error)"])
            consumer.reject(message.deliveryTag, requeue: true)
        }
    }

    private func waitForRateLimit(_ channel: ChannelDefinition) async {
        guard let limit = channel.rateLimit else { return }
        let limiter = rateLimiter.withLock { current -> RateLimiter in
            if let current, current.limit == limit { return current }
            let fresh = RateLimiter(limit: limit)
            current = fresh
            return fresh
        }
        await limiter.waitForSlot()
    }
}

/// Spaces attempts evenly to stay under a rate: the next slot is handed out `period / count` after the last.
final class RateLimiter: Sendable {
    let limit: RateLimit
    private let interval: Duration
    private let nextFree = Mutex(ContinuousClock.now)

    init(limit: RateLimit) {
        self.limit = limit
        interval = limit.per / limit.count
    }

    func waitForSlot() async {
        let now = ContinuousClock.now
        let slot = nextFree.withLock { next -> ContinuousClock.Instant in
            let slot = max(next, now)
            next = slot + interval
            return slot
        }
        if slot > now { try? await Task.sleep(until: slot, clock: .continuous) }
    }
}
