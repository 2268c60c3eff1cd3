import Foundation
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

/// Fires callbacks at their instants, from one thread of its own that waits for the earliest one.
/// Cancelling is O(1) (the entry is forgotten; its heap slot is dropped when it comes up), so the cost
/// per deadline is a heap push and pop under a lock: no task, no dispatch timer, and the thread is
/// woken only when a deadline earlier than the one it waits for arrives (deadlines of one call site
/// grow with time, so that is rare). Callbacks run on that thread and must not block: they resume
/// continuations.
///
/// `@unchecked Sendable`: every stored property is guarded by `condition` (a lock with a condition
/// variable, which `Mutex` has not).
public final class DeadlineTimer: @unchecked Sendable {
    public static let shared = DeadlineTimer()

    public struct Token: Sendable, Hashable { fileprivate let id: UInt64 }

    private struct Entry {
        var at: ContinuousClock.Instant
        var id: UInt64
    }

    private let condition = NSCondition()
    private var heap: [Entry] = []
    private var callbacks: [UInt64: @Sendable () -> Void] = [:]
    private var nextID: UInt64 = 0
    private var threadStarted = false
    /// The instant the thread waits for; nil while it waits for a first entry (or runs callbacks).
    private var waitingUntil: ContinuousClock.Instant?

    public init() {}

    /// Calls `fire` at `instant` (on the timer's thread) unless cancelled before.
    public func schedule(at instant: ContinuousClock.Instant, _ fire: @escaping @Sendable () -> Void) -> Token {
        condition.lock()
        defer { condition.unlock() }
        nextID &+= 1
        let id = nextID
        callbacks[id] = fire
        Self.push(Entry(at: instant, id: id), into: &heap)
        if !threadStarted {
            threadStarted = true
            NamedThread.start("herald-deadline") { [self] in run() }
        } else if waitingUntil.map({ instant < $0 }) ?? true {
            condition.signal()
        }
        return Token(id: id)
    }

    public func cancel(_ token: Token) {
        condition.lock()
        callbacks.removeValue(forKey: token.id)
        condition.unlock()
    }

    /// How many callbacks are pending (for tests).
    public var pending: Int {
        condition.lock()
        defer { condition.unlock() }
        return callbacks.count
    }

    private func run() {
        condition.lock()
        while true {
            while let first = heap.first, callbacks[first.id] == nil { Self.popFirst(&heap) }  // cancelled
            guard let first = heap.first else {
                waitingUntil = nil
                condition.wait()
                continue
            }
            let now = ContinuousClock.now
            guard first.at <= now else {
                waitingUntil = first.at
                // At most a second at a time: the condition's timeout is wall-clock time, so a clock
                // stepped back can delay a deadline by no more than that.
                let seconds = min((first.at - now).timeInterval, 1)
                _ = condition.wait(until: Date(timeIntervalSinceNow: seconds))
                waitingUntil = nil
                continue
            }
            var due: [@Sendable () -> Void] = []
            while let next = heap.first, next.at <= now {
                Self.popFirst(&heap)
                if let callback = callbacks.removeValue(forKey: next.id) { due.append(callback) }
            }
            condition.unlock()
            for callback in due { callback() }
            condition.lock()
        }
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
