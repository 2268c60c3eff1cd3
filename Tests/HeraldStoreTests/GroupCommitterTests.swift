import HeraldCore
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@Suite struct GroupCommitterTests {
    @Test func concurrentSubmissionsShareBatches() async throws {
        let batchSizes = Mutex<[Int]>([])
        let committer = GroupCommitter<Int, Int>(maxBatchSize: 50, maxConcurrentFlushes: 1, logger: Logger(label: "test")) { batch in
            batchSizes.withLock { $0.append(batch.count) }
            try await Task.sleep(for: .milliseconds(20))  // a commit takes time; submissions pile up meanwhile
            return batch.map { $0 * 2 }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            let results = try await withThrowingTaskGroup(of: (Int, Int).self) { submitters in
                for value in 0..<200 { submitters.addTask { (value, try await committer.submit(value)) } }
                var results: [Int: Int] = [:]
                for try await (value, doubled) in submitters { results[value] = doubled }
                return results
            }
            #expect(results.count == 200)
            #expect(results.allSatisfy { $0.value == $0.key * 2 })
            group.cancelAll()
        }
        let sizes = batchSizes.withLock { $0 }
        #expect(sizes.reduce(0, +) == 200)
        #expect(sizes.allSatisfy { $0 <= 50 })
        #expect(sizes.count < 50, "200 concurrent submissions must not cost 200 commits: \(sizes)")
    }

    @Test func aFailedFlushFailsEveryItemInItsBatch() async throws {
        struct Boom: Error {}
        let committer = GroupCommitter<Int, Void>(logger: Logger(label: "test")) { _ in throw Boom() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            await #expect(throws: Boom.self) { try await committer.submit(1) }
            group.cancelAll()
        }
    }

    @Test func gracefulShutdownFlushesPendingItemsThenRefusesNewOnes() async throws {
        let flushed = Mutex(0)
        let committer = GroupCommitter<Int, Void>(maxBatchSize: 10, maxConcurrentFlushes: 1, logger: Logger(label: "test")) { batch in
            try await Task.sleep(for: .milliseconds(30))
            flushed.withLock { $0 += batch.count }
            return batch.map { _ in () }
        }
        let group = ServiceGroup(services: [committer], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                try await withThrowingTaskGroup(of: Void.self) { submitters in
                    for value in 0..<25 { submitters.addTask { try await committer.submit(value) } }
                    try await submitters.waitForAll()
                }
            }
            try await Task.sleep(for: .milliseconds(10))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(flushed.withLock { $0 } == 25)
        await #expect(throws: GroupCommitter<Int, Void>.ShutDownError.self) { try await committer.submit(99) }
    }
}

/// The deadline of `submit(_:deadline:)`: answered in time whether the item is still queued or a
/// slow flush holds it, and a queued item withdrawn at its deadline is never flushed.
@Suite struct GroupCommitterDeadlineTests {
    @Test(.timeLimit(.minutes(1))) func aSlowFlushAnswersItsCallerAtTheDeadline() async throws {
        let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let flushedItems = Mutex<[Int]>([])
        let committer = GroupCommitter<Int, Int>(maxBatchSize: 1, maxConcurrentFlushes: 1, logger: Logger(label: "test")) { batch in
            flushedItems.withLock { $0 += batch }
            if batch == [1] { await withCheckedContinuation { continuation in release.withLock { $0 = continuation } } }
            return batch
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            let start = ContinuousClock.now
            // Item 1 is taken by a flush that hangs; item 2 waits in the queue behind it.
            // Item 1's deadline leaves a loaded machine time to start its flush; the wait for that is bounded.
            let first = Task { try await committer.submit(1, deadline: .seconds(3), operation: "first") }
            let limit = ContinuousClock.now + .seconds(10)
            while release.withLock({ $0 == nil }) && ContinuousClock.now < limit { try await Task.sleep(for: .milliseconds(2)) }
            try #require(release.withLock { $0 != nil }, "item 1 never reached its flush")
            let second = Task { try await committer.submit(2, deadline: .milliseconds(300), operation: "second") }
            await #expect(throws: DeadlineExceeded.self) { _ = try await first.value }
            await #expect(throws: DeadlineExceeded.self) { _ = try await second.value }
            #expect(ContinuousClock.now - start < .seconds(9), "answered at the deadline, not when the flush came back")
            release.withLock { $0?.resume() }
            // The flush came back after its caller was answered: its output is dropped, nothing crashes;
            // item 2, withdrawn at its deadline, is never flushed.
            let third = try await committer.submit(3, deadline: .seconds(5))
            #expect(third == 3)
            #expect(flushedItems.withLock { $0 } == [1, 3])
            group.cancelAll()
        }
    }

    @Test func anItemCommittedInTimeGetsItsOutput() async throws {
        let committer = GroupCommitter<Int, Int>(logger: Logger(label: "test")) { batch in batch.map { $0 + 1 } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await committer.run() }
            let output = try await committer.submit(41, deadline: .seconds(5))
            #expect(output == 42)
            group.cancelAll()
        }
    }
}
