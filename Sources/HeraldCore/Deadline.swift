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
    let timer = Task {
        try? await Task.sleep(for: limit)
        outcome.complete(.failure(DeadlineExceeded(operation: operation, limit: limit)))
    }
    defer {
        timer.cancel()
        work.cancel()
    }
    return try await withTaskCancellationHandler {
        try await outcome.value.get()
    } onCancel: {
        outcome.complete(.failure(CancellationError()))
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
