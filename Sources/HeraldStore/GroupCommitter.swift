import Logging
import ServiceLifecycle
import Synchronization

/// Gathers items that many tasks submit at once into batches, and hands each batch to one
/// `flush` call: N concurrent callers cost one transaction instead of N ("group commit").
///
/// Batches form naturally: while a flush runs, new items queue up and the next flush takes them
/// all (up to `maxBatchSize`). `maxConcurrentFlushes` flushes may run at once, so one slow commit
/// doesn't stall the pipeline. On graceful shutdown it stops taking items, flushes what it holds,
/// then returns.
public final class GroupCommitter<Item: Sendable, Output: Sendable>: Service, Sendable {
    public typealias Flush = @Sendable ([Item]) async throws -> [Output]

    private struct Pending: Sendable {
        var item: Item
        var continuation: CheckedContinuation<Output, any Error>
    }

    private struct State: Sendable {
        var pending: [Pending] = []
        var idleFlushers: [CheckedContinuation<Void, Never>] = []
        var isShuttingDown = false
    }

    public struct ShutDownError: Error, Sendable, CustomStringConvertible {
        public var description: String { "the committer is shutting down and takes no more items" }
    }

    /// A flush returned a different number of outputs than it got items.
    public struct OutputCountMismatch: Error, Sendable {}

    private let state = Mutex(State())
    private let maxBatchSize: Int
    private let maxConcurrentFlushes: Int
    private let flush: Flush
    private let logger: Logger

    public init(maxBatchSize: Int = 256, maxConcurrentFlushes: Int = 2, logger: Logger, flush: @escaping Flush) {
        precondition(maxBatchSize > 0 && maxConcurrentFlushes > 0)
        self.maxBatchSize = maxBatchSize
        self.maxConcurrentFlushes = maxConcurrentFlushes
        self.flush = flush
        self.logger = logger
    }

    /// Queues `item` for the next batch and returns its output once that batch is committed.
    public func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let (accepted, flusher) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                guard !state.isShuttingDown else { return (false, nil) }
                state.pending.append(Pending(item: item, continuation: continuation))
                return (true, state.idleFlushers.popLast())
            }
            if !accepted { continuation.resume(throwing: ShutDownError()) }
            flusher?.resume()
        }
    }

    public func run() async throws {
        // Cancellation ends it the same way as graceful shutdown: what it holds is flushed first.
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<maxConcurrentFlushes {
                    group.addTask { await self.flushLoop() }
                }
            }
        } onCancelOrGracefulShutdown: {
            self.beginShutdown()
        }
    }

    private func beginShutdown() {
        let idle = state.withLock { state in
            state.isShuttingDown = true
            defer { state.idleFlushers.removeAll() }
            return state.idleFlushers
        }
        idle.forEach { $0.resume() }
    }

    private func flushLoop() async {
        while let batch = await nextBatch() {
            do {
                let outputs = try await flush(batch.map(\.item))
                guard outputs.count == batch.count else { throw OutputCountMismatch() }
                for (pending, output) in zip(batch, outputs) { pending.continuation.resume(returning: output) }
            } catch {
                logger.error("batch flush failed", metadata: ["batch.size": "\(batch.count)", "error": "\(error)"])
                for pending in batch { pending.continuation.resume(throwing: error) }
            }
        }
    }

    private enum NextStep { case batch([Pending]), finished, wait }

    /// Waits for items; nil once shutting down with nothing left.
    private func nextBatch() async -> [Pending]? {
        while true {
            let next: NextStep = state.withLock { state in
                if !state.pending.isEmpty {
                    let count = min(maxBatchSize, state.pending.count)
                    let batch = Array(state.pending.prefix(count))
                    state.pending.removeFirst(count)
                    return .batch(batch)
                }
                return state.isShuttingDown ? .finished : .wait
            }
            switch next {
            case .batch(let batch): return batch
            case .finished: return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state in
                        if !state.pending.isEmpty || state.isShuttingDown { return true }
                        state.idleFlushers.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }
}
