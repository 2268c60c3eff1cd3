/// Identifies one transfer for its whole life (reserved → pending → active → finished).
struct TransferID: Hashable, Sendable, Comparable, CustomStringConvertible {
    var rawValue: UInt64

    static func < (lhs: TransferID, rhs: TransferID) -> Bool { lhs.rawValue < rhs.rawValue }
    var description: String { "#\(self.rawValue)" }
}

/// Why the state machine refuses or ends a transfer on its own.
enum TransferFailure: Sendable, Equatable {
    /// The calling task was cancelled.
    case cancelled
    /// The runtime is shutting down or has shut down.
    case shutdown
}

/// The bookkeeping of ``CurlRuntime``, free of any I/O: a pure value type that
/// is told what happened and answers with what to do.
///
/// Lifecycle: `idle` (submissions queue up until `run()` starts the loop) →
/// `running` → `shuttingDown` (loop told to abort what is active) → `stopped`.
/// Transfers: `reserveID` → `submit` (pending) → `nextLoopWork` (active, at
/// most `maxActive` at a time, FIFO) → `transferFinished`. A transfer can be
/// cancelled in every one of those stages.
///
/// `Job` is whatever the caller needs to finish a transfer (the runtime uses a
/// job holding a one-shot continuation); the machine only stores and hands it out.
struct TransferStateMachine<Job: Sendable>: Sendable {
    enum Phase: Sendable, Equatable {
        case idle
        case running
        case shuttingDown
        case stopped
    }

    /// What the caller of `submit` must do.
    enum SubmitAction {
        /// Queued; write to the wake fd so the loop picks it up.
        case wakeLoop
        /// Queued; nothing else to do (loop not started yet, already woken, or at capacity).
        case none
        /// Not queued: finish the job with this failure.
        case fail(Job, TransferFailure)
    }

    /// What the caller of `cancel` must do.
    enum CancelAction {
        /// The transfer was still pending and is removed: fail its job with `CancellationError`.
        case failPending(Job)
        /// The transfer is active: wake the loop, which removes it and fails the job.
        case wakeLoop
        /// Nothing to do (unknown, already finished, or noted for a later `submit`).
        case none
    }

    enum StartAction: Equatable {
        /// Start the loop thread.
        case startLoop
        /// `run()` was already called (or the runtime is stopped).
        case alreadyStarted
    }

    /// What the loop thread must do in one iteration.
    struct LoopWork {
        /// Pending transfers that just became active: add them to the multi handle.
        var start: [(TransferID, Job)] = []
        /// Active transfers whose task was cancelled: remove them and fail with `CancellationError`.
        var cancel: [TransferID] = []
        /// Abort every active transfer with `.shutdown`, clean up and exit.
        var shutdown: Bool = false
    }

    enum ShutdownAction {
        /// Fail these pending jobs with `.shutdown` and wake the loop so it aborts active transfers.
        case wakeLoop(failPending: [Job])
        /// The loop never ran: fail these pending jobs with `.shutdown`; nothing else to stop.
        case stopped(failPending: [Job])
        /// Already shutting down or stopped.
        case none
    }

    let maxActive: Int
    private(set) var phase: Phase = .idle

    private var nextID: UInt64 = 0
    /// IDs handed out by `reserveID` but not yet submitted.
    private var reserved: Set<TransferID> = []
    /// Reserved IDs whose task was cancelled before `submit` ran.
    private var cancelledBeforeSubmit: Set<TransferID> = []
    /// Pending jobs by ID plus their FIFO order (entries removed by cancel are skipped lazily).
    private var pendingJobs: [TransferID: Job] = [:]
    private var pendingOrder: [TransferID] = []
    private var pendingHead: Int = 0
    /// Active transfers; the value is `true` once cancellation was requested.
    private var active: [TransferID: Bool] = [:]
    /// Active transfers whose cancellation has not been handed to the loop yet.
    private var cancelRequests: [TransferID] = []
    /// A wake-up was requested and the loop has not taken its work since.
    private var wakeRequested = false

    init(maxActive: Int) {
        precondition(maxActive > 0, "maxActive must be positive")
        self.maxActive = maxActive
    }

    var pendingCount: Int { self.pendingJobs.count }
    var activeCount: Int { self.active.count }

    // MARK: Submission

    mutating func reserveID() -> TransferID {
        self.nextID += 1
        let id = TransferID(rawValue: self.nextID)
        self.reserved.insert(id)
        return id
    }

    mutating func submit(_ id: TransferID, job: Job) -> SubmitAction {
        precondition(self.reserved.contains(id), "submit of an ID that was not reserved (or submitted twice)")
        self.reserved.remove(id)
        if self.cancelledBeforeSubmit.remove(id) != nil {
            return .fail(job, .cancelled)
        }
        switch self.phase {
        case .shuttingDown, .stopped:
            return .fail(job, .shutdown)
        case .idle:
            self.enqueue(id, job)
            return .none
        case .running:
            self.enqueue(id, job)
            return self.requestWakeIfUseful()
        }
    }

    // MARK: Cancellation

    mutating func cancel(_ id: TransferID) -> CancelAction {
        if self.reserved.contains(id) {
            // The cancellation handler ran before `submit`: remember it.
            self.cancelledBeforeSubmit.insert(id)
            return .none
        }
        if let job = self.pendingJobs.removeValue(forKey: id) {
            self.compactPendingOrderIfNeeded()
            return .failPending(job)
        }
        if let alreadyRequested = self.active[id] {
            if alreadyRequested { return .none }
            self.active[id] = true
            self.cancelRequests.append(id)
            return self.phase == .running || self.phase == .shuttingDown ? self.forceWake() : .none
        }
        return .none
    }

    // MARK: Loop

    mutating func start() -> StartAction {
        guard self.phase == .idle else { return .alreadyStarted }
        self.phase = .running
        self.wakeRequested = true  // the loop's first iteration takes the work anyway
        return .startLoop
    }

    /// Called by the loop thread at the top of every iteration.
    mutating func nextLoopWork() -> LoopWork {
        self.wakeRequested = false
        var work = LoopWork()
        work.cancel = self.cancelRequests.filter { self.active[$0] != nil }
        self.cancelRequests.removeAll(keepingCapacity: true)
        switch self.phase {
        case .shuttingDown, .stopped:
            work.shutdown = true
            return work
        case .idle:
            return work
        case .running:
            break
        }
        while self.active.count < self.maxActive, let (id, job) = self.popPending() {
            self.active[id] = false
            work.start.append((id, job))
        }
        return work
    }

    /// The loop finished an active transfer (completed, failed, cancelled or aborted).
    mutating func transferFinished(_ id: TransferID) {
        self.active.removeValue(forKey: id)
    }

    // MARK: Shutdown

    mutating func shutdown() -> ShutdownAction {
        switch self.phase {
        case .shuttingDown, .stopped:
            return .none
        case .idle:
            self.phase = .stopped
            return .stopped(failPending: self.drainPending())
        case .running:
            self.phase = .shuttingDown
            return .wakeLoop(failPending: self.drainPending())
        }
    }

    /// The loop thread exited; every active transfer it had is finished.
    mutating func loopStopped() {
        self.phase = .stopped
        self.active.removeAll()
        self.cancelRequests.removeAll()
        // Anything submitted in between was refused already; drain defensively.
        precondition(self.pendingJobs.isEmpty, "pending jobs left after the loop stopped")
    }

    // MARK: Private

    private mutating func enqueue(_ id: TransferID, _ job: Job) {
        self.pendingJobs[id] = job
        self.pendingOrder.append(id)
    }

    private mutating func requestWakeIfUseful() -> SubmitAction {
        // At capacity the loop takes pending work after the next completion anyway.
        guard self.active.count < self.maxActive, !self.wakeRequested else { return .none }
        self.wakeRequested = true
        return .wakeLoop
    }

    private mutating func forceWake() -> CancelAction {
        guard !self.wakeRequested else { return .none }
        self.wakeRequested = true
        return .wakeLoop
    }

    private mutating func popPending() -> (TransferID, Job)? {
        while self.pendingHead < self.pendingOrder.count {
            let id = self.pendingOrder[self.pendingHead]
            self.pendingHead += 1
            if let job = self.pendingJobs.removeValue(forKey: id) {
                self.compactPendingOrderIfNeeded()
                return (id, job)
            }
        }
        self.pendingOrder.removeAll(keepingCapacity: true)
        self.pendingHead = 0
        return nil
    }

    private mutating func compactPendingOrderIfNeeded() {
        if self.pendingJobs.isEmpty {
            self.pendingOrder.removeAll(keepingCapacity: true)
            self.pendingHead = 0
        } else if self.pendingHead > 1024, self.pendingHead * 2 > self.pendingOrder.count {
            self.pendingOrder.removeFirst(self.pendingHead)
            self.pendingHead = 0
        } else if self.pendingOrder.count - self.pendingHead > 4 * self.pendingJobs.count + 1024 {
            // Many cancelled entries linger in the order list: rebuild it.
            self.pendingOrder = self.pendingOrder[self.pendingHead...].filter { self.pendingJobs[$0] != nil }
            self.pendingHead = 0
        }
    }

    private mutating func drainPending() -> [Job] {
        var jobs: [Job] = []
        jobs.reserveCapacity(self.pendingJobs.count)
        while let (_, job) = self.popPending() {
            jobs.append(job)
        }
        return jobs
    }
}
