import HeraldCore
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
///
/// One bad item must not fail its neighbours: when a flush fails with an error that `isolate`
/// says an item caused (a data error, not a lost connection), the batch is split in halves and
/// each half flushed again, down to the single item that fails. A caller whose task is cancelled
/// before its item was taken gets `CancellationError` and its item is never flushed.
public final class GroupCommitter<Item: Sendable, Output: Sendable>: Service, Sendable {
    public typealias Flush = @Sendable ([Item]) async throws -> [Output]

    private struct Pending: Sendable {
        var id: UInt64
        var item: Item
        var continuation: CheckedContinuation<Output, any Error>
        var deadline: DeadlineTimer.Token?
    }

    private struct State: Sendable {
        var pending: [Pending] = []
        /// Items a flush has taken, by id: whoever removes one (the flush, or its deadline) answers it.
        var taken: [UInt64: Pending] = [:]
        var idleFlushers: [CheckedContinuation<Void, Never>] = []
        var isShuttingDown = false
        var nextID: UInt64 = 0
    }

    public typealias ShutDownError = GroupCommitterShutDown

    /// A flush returned a different number of outputs than it got items.
    public struct OutputCountMismatch: Error, Sendable {}

    private let state = Mutex(State())
    private let maxBatchSize: Int
    private let maxConcurrentFlushes: Int
    private let flush: Flush
    private let flushDeadline: Duration?
    private let isolate: @Sendable (any Error) -> Bool
    private let describe: @Sendable (any Error) -> String
    private let logger: Logger

    /// - Parameters:
    ///   - isolate: whether an error may have been caused by one item (then the batch is split).
    ///   - describe: how errors are written to the log.
    ///   - flushDeadline: longest a flush may take; past it the batch fails with `DeadlineExceeded`
    ///     and the flush is abandoned, so a database that stopped answering can't hold the committer
    ///     (nor its shutdown). Default none.
    public init(
        maxBatchSize: Int = 256, maxConcurrentFlushes: Int = 2, flushDeadline: Duration? = nil, logger: Logger,
        isolate: @escaping @Sendable (any Error) -> Bool = { _ in false },
        describe: @escaping @Sendable (any Error) -> String = { String(describing: $0) },
        flush: @escaping Flush
    ) {
        precondition(maxBatchSize > 0 && maxConcurrentFlushes > 0)
        self.maxBatchSize = maxBatchSize
        self.maxConcurrentFlushes = maxConcurrentFlushes
        self.flush = flush
        self.flushDeadline = flushDeadline
        self.isolate = isolate
        self.describe = describe
        self.logger = logger
    }

    /// Queues `item` for the next batch and returns its output once that batch is committed.
    public func submit(_ item: Item) async throws -> Output {
        try await submit(item, deadline: nil)
    }

    /// `submit(_:)` answered within `deadline`: past it the caller gets `DeadlineExceeded` (naming
    /// `operation`) at once. An item still queued then is withdrawn and never flushed; one a flush has
    /// taken may still be committed, its output dropped. One shared timer, no task per call (this is
    /// every request's and every delivery's path).
    public func submit(_ item: Item, deadline: Duration?, operation: String = "a group commit") async throws -> Output {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let token = deadline.map { limit in
                    DeadlineTimer.shared.schedule(at: .now + limit) { [weak self] in
                        self?.expire(id, error: DeadlineExceeded(operation: operation, limit: limit))
                    }
                }
                let (accepted, flusher) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                    guard !state.isShuttingDown else { return (false, nil) }
                    state.pending.append(Pending(id: id, item: item, continuation: continuation, deadline: token))
                    return (true, state.idleFlushers.popLast())
                }
                if !accepted {
                    if let token { DeadlineTimer.shared.cancel(token) }
                    continuation.resume(throwing: ShutDownError())
                }
                flusher?.resume()
            }
        } onCancel: {
            // Withdraw the item if no flush has taken it yet; once taken, it completes with its batch.
            let withdrawn = state.withLock { state -> Pending? in
                guard let index = state.pending.firstIndex(where: { $0.id == id }) else { return nil }
                return state.pending.remove(at: index)
            }
            if let token = withdrawn?.deadline { DeadlineTimer.shared.cancel(token) }
            withdrawn?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The deadline of item `id` passed: answer it now, queued (withdrawn) or taken (output dropped).
    private func expire(_ id: UInt64, error: DeadlineExceeded) {
        let expired = state.withLock { state -> Pending? in
            if let index = state.pending.firstIndex(where: { $0.id == id }) { return state.pending.remove(at: index) }
            return state.taken.removeValue(forKey: id)
        }
        expired?.continuation.resume(throwing: error)
    }

    /// Removes taken items to answer them; nil for one whose deadline answered it already.
    private func claimAnswers(_ batch: [Pending]) -> [Pending?] {
        let claimed = state.withLock { state in batch.map { state.taken.removeValue(forKey: $0.id) } }
        for case let token? in claimed.map({ $0?.deadline }) { DeadlineTimer.shared.cancel(token) }
        return claimed
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
            await flushIsolating(batch)
        }
    }

    private func flushIsolating(_ batch: [Pending], attempt: Int = 1) async {
        do {
            let items = batch.map(\.item)
            let outputs: [Output]
            if let flushDeadline {
                outputs = try await withDeadline(flushDeadline, "a batch commit of \(items.count)") { [flush] in try await flush(items) }
            } else {
                outputs = try await flush(items)
            }
            guard outputs.count == batch.count else { throw OutputCountMismatch() }
            for (pending, output) in zip(claimAnswers(batch), outputs) { pending?.continuation.resume(returning: output) }
        } catch {
            if attempt < 3 && StoreFailure.isRaceLost(error) {
                // A deadlock or serialization failure says nothing about the items: run it again.
                logger.info("batch lost a race with another transaction; running it again", metadata: ["error": "\(describe(error))"])
                await flushIsolating(batch, attempt: attempt + 1)
                return
            }
            if batch.count > 1 && isolate(error) {
                logger.warning("batch flush failed; splitting it to find the item that caused it", metadata: [
                    "batch.size": "\(batch.count)", "error": "\(describe(error))",
                ])
                let middle = batch.count / 2
                await flushIsolating(Array(batch[..<middle]))
                await flushIsolating(Array(batch[middle...]))
                return
            }
            logger.error("batch flush failed", metadata: ["batch.size": "\(batch.count)", "error": "\(describe(error))"])
            for pending in claimAnswers(batch) { pending?.continuation.resume(throwing: error) }
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
                    for pending in batch { state.taken[pending.id] = pending }
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

/// A committer that is shutting down takes no more items.
public struct GroupCommitterShutDown: Error, Sendable, CustomStringConvertible {
    public var description: String { "the committer is shutting down and takes no more items" }
}
