import Synchronization

/// Lets one task sleep until another rings, or a timeout passes. Rings while nobody waits are
/// remembered (once), so a ring between two waits is never lost.
public final class Doorbell: Sendable {
    private struct State {
        var rang = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rang = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns when rung, when `timeout` passes, or when the task is cancelled. One waiter at a time.
    public func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForRing() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.rang || Task.isCancelled {
                        state.rang = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}

extension Array where Element == Doorbell {
    /// Runs `loop` for each doorbell at once (a service's loops, each woken by its own bell) and
    /// returns when every loop has returned.
    public func runLoops(_ loop: @escaping @Sendable (Doorbell) async -> Void) async {
        await withDiscardingTaskGroup { group in
            for doorbell in self {
                group.addTask { await loop(doorbell) }
            }
        }
    }
}
