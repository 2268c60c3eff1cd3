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
        trace: TraceContext? = nil, makeID: (() -> UUID)? = nil
    ) -> Result<PlannedNotification, RequestValidationError> {
        // Every id of a notification carries the same instant, so that its deliveries (and their
        // attempts and receipts) are stored in its day partition (Migrations.partitionByDay).
        let makeID = makeID ?? { UUID.timeOrdered(now: now) }
        let plan: DeliveryPlan
        switch snapshot.plan(request) {
        case .success(let planned): plan = planned
        case .failure(let failure): return .failure(failure)
        }
        if let failure = smsProblems(plan, request: request, snapshot: snapshot) { return .failure(failure) }
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

    /// A text that no provider of its SMS channel can send whole is refused at accept (422), not cut
    /// by the provider later: each provider's `sms.max_parts` against the one SMS count. A channel
    /// with a provider that declares no limit may still send it, and is not checked.
    static func smsProblems(_ plan: DeliveryPlan, request: NotificationRequest, snapshot: ConfigSnapshot) -> RequestValidationError? {
        var errors: [FieldError] = []
        for channelName in plan.channels {
            let providers = snapshot.providers(for: channelName)
            guard snapshot.registry[channelName] != nil, !providers.isEmpty else { continue }
            let limits = providers.compactMap(\.sms)
            guard limits.count == providers.count else { continue }
            let segmentation = SMSSegmentation((plan.messages[channelName] ?? request.message).text ?? "")
            // The most any of its providers takes: failover may get there.
            let widest = SMSProviderSettings(maxParts: limits.map(\.maxParts).max() ?? 0, coding: [:])
            guard let problem = widest.problem(with: segmentation) else { continue }
            let field = request.template == nil ? "message.text" : "template"
            errors.append(FieldError(
                field: field,
                message: "channel \(channelName): " + problem.replacingOccurrences(of: "this provider sends", with: "its providers send")))
        }
        return errors.isEmpty ? nil : RequestValidationError(errors: errors)
    }

    /// A `send_at` closer than this is sent at once (clocks differ a little; `scheduled` would only add a hop).
    static let scheduleThreshold: TimeInterval = 1
}
