import Foundation

// What the delivery engine decides and the store writes. These are plain values: the engine
// produces them without I/O, the store executes them, and tests compare them.

/// A notification ready to be stored: the document and its deliveries.
public struct NewNotification: Sendable, Hashable {
    public var id: UUID
    public var createdAt: Date
    /// Who it belongs to (the API key's tenant); idempotency keys are per tenant.
    public var tenant: String
    public var idempotencyKey: String?
    /// SHA-256 of the request as received: a second request with the same key must carry the same body.
    public var requestHash: String?
    /// The answer given to the first request, replayed for a duplicate.
    public var response: String?
    public var configVersion: String
    public var document: JSONValue
    public var deliveries: [NewDelivery]

    public init(
        id: UUID, createdAt: Date, tenant: String = Tenant.default, idempotencyKey: String?, requestHash: String? = nil,
        response: String? = nil, configVersion: String, document: JSONValue, deliveries: [NewDelivery]
    ) {
        self.id = id
        self.createdAt = createdAt
        self.tenant = tenant
        self.idempotencyKey = idempotencyKey
        self.requestHash = requestHash
        self.response = response
        self.configVersion = configVersion
        self.document = document
        self.deliveries = deliveries
    }
}

public struct NewDelivery: Sendable, Hashable {
    public var id: UUID
    public var channel: String
    /// `queued`, `scheduled` (a future `send_at`) or `pending` (a fallback waiting for its turn).
    public var status: DeliveryStatus
    /// The job as UTF-8 JSON: stored with the delivery (what is sent is what is stored) and
    /// published from there for every attempt, retry and replay.
    public var job: String
    /// When the outbox publishes it; nil for a pending fallback, which a worker enqueues later.
    public var publishAt: Date?

    public init(id: UUID, channel: String, status: DeliveryStatus, job: String, publishAt: Date?) {
        self.id = id
        self.channel = channel
        self.status = status
        self.job = job
        self.publishAt = publishAt
    }
}

/// Why a row is in the outbox (shown in logs and metrics; the relay treats all alike except that
/// publishing a `scheduled` one moves its delivery to `queued`).
public enum OutboxPurpose: String, Sendable, Hashable, CaseIterable {
    case deliver, scheduled, retry, fallback, replay
    /// The provider answered "slow down" (429): the same attempt again once it said it may be.
    case throttled
    /// Put back for later because its destination host had too many attempts in flight.
    case deferred
}

/// An outbox row to insert: publish the delivery's stored job for attempt `attempt` at `notBefore`.
public struct OutboxEnqueue: Sendable, Hashable {
    public var deliveryID: UUID
    public var attempt: Int
    public var notBefore: Date
    public var purpose: OutboxPurpose

    public init(deliveryID: UUID, attempt: Int, notBefore: Date, purpose: OutboxPurpose) {
        self.deliveryID = deliveryID
        self.attempt = attempt
        self.notBefore = notBefore
        self.purpose = purpose
    }
}

/// What one processed message leaves in the database, written in one transaction before the ack.
public struct Settlement: Sendable, Hashable {
    public var deliveryID: UUID
    /// Appended to the attempt log (one per provider tried in this attempt).
    public var attempts: [AttemptRecord]
    /// The delivery's new status; nil leaves it as it is (a deferred message). A terminal status
    /// already stored is never overwritten.
    public var status: DeliveryStatus?
    /// The delivery's `last_error` after this settlement (nil clears it: a `sent` delivery has none).
    public var lastError: String?
    public var enqueue: [OutboxEnqueue]
    /// Fallback deliveries whose turn has come: `pending` → `queued` (their outbox rows are in `enqueue`).
    public var activate: [UUID]
    /// Fallback deliveries made unnecessary: `pending` → `cancelled`.
    public var cancel: [UUID]
    /// Whether the attempts recorded here count against the budget (the delivery's `attempt_count`
    /// moves to their number). False for a throttled attempt: it is made again under the same number.
    public var spendsAttempt: Bool

    public init(
        deliveryID: UUID, attempts: [AttemptRecord] = [], status: DeliveryStatus?, lastError: String? = nil,
        enqueue: [OutboxEnqueue] = [], activate: [UUID] = [], cancel: [UUID] = [], spendsAttempt: Bool = true
    ) {
        self.spendsAttempt = spendsAttempt
        self.deliveryID = deliveryID
        self.attempts = attempts
        self.status = status
        self.lastError = lastError
        self.enqueue = enqueue
        self.activate = activate
        self.cancel = cancel
    }
}

/// A worker's request to claim a delivery for attempt `attempt` (moves it to `sending`).
public struct ClaimRequest: Sendable, Hashable {
    public var deliveryID: UUID
    public var attempt: Int
    /// How long the claim holds before another worker may treat the attempt as abandoned.
    public var lease: Duration

    public init(deliveryID: UUID, attempt: Int, lease: Duration) {
        self.deliveryID = deliveryID
        self.attempt = attempt
        self.lease = lease
    }
}

/// A delivery's stored state as a claim found it.
public struct ClaimResult: Sendable, Hashable {
    /// Whether this claim moved the delivery to `sending` for the requested attempt.
    public var claimed: Bool
    /// The status before the claim.
    public var status: DeliveryStatus
    /// The number of the newest recorded attempt (0: none).
    public var attemptCount: Int
    /// Attempts recorded before the current run (a replay starts a new run with a fresh budget).
    public var attemptBase: Int
    /// For a delivery already in `sending`: the worker holding it and how long its lease still runs.
    public var claimedBy: String?
    public var leaseRemaining: Duration?
    /// Tries of the requested attempt the provider throttled so far (they don't spend the attempt).
    public var throttledTries: Int

    public init(
        claimed: Bool, status: DeliveryStatus, attemptCount: Int, attemptBase: Int = 0, claimedBy: String? = nil,
        leaseRemaining: Duration? = nil, throttledTries: Int = 0
    ) {
        self.throttledTries = throttledTries
        self.claimed = claimed
        self.status = status
        self.attemptCount = attemptCount
        self.attemptBase = attemptBase
        self.claimedBy = claimedBy
        self.leaseRemaining = leaseRemaining
    }
}

/// Tenants: every notification, delivery and attempt belongs to one, named by the API key that sent it.
public enum Tenant {
    /// What rows from before tenants, and processes without keys, belong to.
    public static let `default` = "default"
}
