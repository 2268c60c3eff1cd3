import Foundation
import HeraldConfig
import HeraldCore

/// A notification as the engine planned it: what to store, and how it was routed.
public struct PlannedNotification: Sendable, Hashable {
    public var notification: NewNotification
    public var plan: DeliveryPlan
}

extension DeliveryEngine {
    /// Turns a validated request into the notification to store: one delivery per channel, each
    /// with its job (rendered message included), its first status and when the outbox publishes it.
    ///
    /// - `all`: every channel's delivery is published at `send_at` (or now).
    /// - `fallback`: only the first is published; the others wait `pending`, each job naming the
    ///   deliveries after it, until a worker settles the previous one as failed.
    /// - A `send_at` more than a second ahead makes the published deliveries `scheduled`.
    public static func plan(
        _ request: NotificationRequest, snapshot: ConfigSnapshot, now: Date, tenant: String = Tenant.default,
        trace: TraceContext? = nil, makeID: () -> UUID = { UUID.timeOrdered() }
    ) -> Result<PlannedNotification, RequestValidationError> {
        let plan: DeliveryPlan
        switch snapshot.plan(request) {
        case .success(let planned): plan = planned
        case .failure(let failure): return .failure(failure)
        }
        let notificationID = makeID()
        let deliveryIDs = plan.channels.map { _ in makeID() }
        let publishAt = max(request.sendAt ?? now, now)
        let isScheduled = publishAt.timeIntervalSince(now) > scheduleThreshold

        var deliveries: [NewDelivery] = []
        for (index, channel) in plan.channels.enumerated() {
            let fallbackIDs = plan.strategy == .fallback ? Array(deliveryIDs.dropFirst(index + 1)) : []
            var job = DeliveryJob(
                deliveryID: deliveryIDs[index], notificationID: notificationID, channel: channel, attempt: 1,
                to: request.to, message: plan.messages[channel] ?? request.message, data: request.data,
                metadata: request.metadata, acceptedAt: now, configVersion: snapshot.version,
                fallbackIDs: fallbackIDs, expiresAt: request.expiresAt, tenant: tenant,
                locale: plan.locales[channel])
            job.traceparent = trace?.traceparent
            let waitsForEarlierChannel = plan.strategy == .fallback && index > 0
            let status: DeliveryStatus = waitsForEarlierChannel ? .pending : (isScheduled ? .scheduled : .queued)
            let encoded: [UInt8]
            do {
                encoded = try job.encoded()
            } catch {
                return .failure(.init(errors: [FieldError(field: "", message: "the request could not be encoded: \(error)")]))
            }
            deliveries.append(NewDelivery(
                id: job.deliveryID, channel: channel, status: status, job: String(decoding: encoded, as: UTF8.self),
                publishAt: waitsForEarlierChannel ? nil : publishAt))
        }
        let notification = NewNotification(
            id: notificationID, createdAt: now, tenant: tenant, idempotencyKey: request.idempotencyKey,
            configVersion: snapshot.version, document: request.document, deliveries: deliveries)
        return .success(PlannedNotification(notification: notification, plan: plan))
    }

    /// A `send_at` closer than this is sent at once (clocks differ a little; `scheduled` would only add a hop).
    static let scheduleThreshold: TimeInterval = 1
}
