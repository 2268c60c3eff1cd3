import Synchronization

/// An operation did not finish within its deadline.
public struct DeadlineExceeded: Error, Sendable, Hashable, CustomStringConvertible {
    public var operation: String
    public var limit: Duration

    public init(operation: String, limit: Duration) {
        self.operation = operation
        self.limit = limit
    }

    public var description: String { "\(operation) did not finish within \(limit)" }
}

/// Runs `operation` with a deadline. When the deadline passes first, the operation is cancelled
/// and *abandoned*: this returns (throwing `DeadlineExceeded`) without waiting for it, because the
/// point of a deadline is that a call stuck inside a library that ignores cancellation — a
/// half-closed database connection, say — can't hold the caller. The abandoned task finishes or
/// stays stuck on its own; its result is dropped.
///
/// Also ends early when the calling task is cancelled (throwing `CancellationError`).
public func withDeadline<T: Sendable>(
    _ limit: Duration, _ operation: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = OneShot<Result<T, any Error>>()
    let work = Task { outcome.complete(await Result(asyncCatching: body)) }
    // One process-wide timer rather than a sleeping task per call: the hot paths (accept, claim,
    // record) each run under a deadline, and a task plus a dispatch timer per call cost more than the
    // calls they guard (seen in the gateway's and worker's profiles).
    let timer = DeadlineTimer.shared.schedule(at: .now + limit) {
        outcome.complete(.failure(DeadlineExceeded(operation: operation, limit: limit)))
    }
    defer {
        DeadlineTimer.shared.cancel(timer)
        work.cancel()
    }
    return try await withTaskCancellationHandler {
        try await outcome.value.get()
    } onCancel: {
        outcome.complete(.failure(CancellationError()))
    }
}

/// Fires callbacks at their instants, from one task that sleeps until the earliest one. Cancelling
/// is O(1) (the entry is forgotten; its heap slot is dropped when it comes up), so the cost per
/// deadline is a heap push and pop, not a task and a timer.
public final class DeadlineTimer: Sendable {
    public static let shared = DeadlineTimer()

    public struct Token: Sendable, Hashable { fileprivate let id: UInt64 }

    private struct Entry {
        var at: ContinuousClock.Instant
        var id: UInt64
    }

    private struct State {
        var heap: [Entry] = []
        var callbacks: [UInt64: @Sendable () -> Void] = [:]
        var nextID: UInt64 = 0
        /// When the sleeping task wakes; nil when none sleeps.
        var wakesAt: ContinuousClock.Instant?
        var sleeper: Task<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// Calls `fire` at `instant` (on the timer's task) unless cancelled before.
    public func schedule(at instant: ContinuousClock.Instant, _ fire: @escaping @Sendable () -> Void) -> Token {
        state.withLock { state in
            state.nextID &+= 1
            let id = state.nextID
            state.callbacks[id] = fire
            Self.push(Entry(at: instant, id: id), into: &state.heap)
            // Deadlines of one call site grow with time, so the sleeper rarely needs an earlier wake-up.
            if state.wakesAt.map({ instant < $0 }) ?? true { startSleeper(until: instant, &state) }
            return Token(id: id)
        }
    }

    public func cancel(_ token: Token) {
        _ = state.withLock { $0.callbacks.removeValue(forKey: token.id) }
    }

    /// How many callbacks are pending (for tests).
    public var pending: Int { state.withLock { $0.callbacks.count } }

    private func startSleeper(until instant: ContinuousClock.Instant, _ state: inout State) {
        state.sleeper?.cancel()
        state.wakesAt = instant
        // Detached at high priority: created by whichever call came first, it would otherwise inherit
        // that caller's priority, and a background caller's timer waits behind all other work.
        state.sleeper = Task.detached(priority: .high) { [weak self] in
            try? await Task.sleep(until: instant, clock: .continuous)
            if Task.isCancelled { return }
            self?.fireDue()
        }
    }

    private func fireDue() {
        let now = ContinuousClock.now
        let due = state.withLock { state -> [@Sendable () -> Void] in
            var due: [@Sendable () -> Void] = []
            while let first = state.heap.first {
                guard state.callbacks[first.id] != nil else {
                    Self.popFirst(&state.heap)  // cancelled
                    continue
                }
                guard first.at <= now else { break }
                Self.popFirst(&state.heap)
                if let callback = state.callbacks.removeValue(forKey: first.id) { due.append(callback) }
            }
            state.sleeper = nil
            state.wakesAt = nil
            if let next = state.heap.first { startSleeper(until: next.at, &state) }
            return due
        }
        for callback in due { callback() }
    }

    private static func push(_ entry: Entry, into heap: inout [Entry]) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].at < heap[parent].at else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private static func popFirst(_ heap: inout [Entry]) {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].at < heap[smallest].at { smallest = left }
            if right < heap.count, heap[right].at < heap[smallest].at { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

extension Result where Failure == any Error {
    init(asyncCatching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// A value set once and awaited by one task; later completions are ignored.
final class OneShot<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Value, Never>)
        case done(Value)
    }

    private let state = Mutex(State.empty)

    func complete(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, Never>? in
            switch state {
            case .empty:
                state = .done(value)
                return nil
            case .waiting(let continuation):
                state = .done(value)
                return continuation
            case .done:
                return nil
            }
        }
        waiter?.resume(returning: value)
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value? in
                    switch state {
                    case .empty:
                        state = .waiting(continuation)
                        return nil
                    case .done(let value):
                        return value
                    case .waiting:
                        preconditionFailure("OneShot awaited twice")
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
