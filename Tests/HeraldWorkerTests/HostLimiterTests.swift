import Foundation
import HeraldCore
import Synchronization
import Testing

@testable import HeraldWorker

@Suite struct HostLimiterTests {
    final class Order: Sendable { let items = Mutex<[Int]>([]) }

    @Test func aReleaseHandsTheSlotToTheLongestWaiterWithoutFreeingIt() async throws {
        let limiter = HostLimiter(timer: DeadlineTimer())
        #expect(limiter.tryAcquire("a", limit: 1))
        let order = Order()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 1...2 {
                group.addTask {
                    let got = await limiter.acquire("a", limit: 1, waitingAtMost: .seconds(10))
                    #expect(got)
                    order.items.withLock { $0.append(index) }
                    limiter.release("a")
                }
                // Let the first waiter queue before the second.
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(order.items.withLock { $0 }.isEmpty)
            // Another host is not held up by "a".
            #expect(limiter.tryAcquire("b", limit: 1))
            limiter.release("a")
            try await group.waitForAll()
        }
        #expect(order.items.withLock { $0 } == [1, 2])
        #expect(limiter.count("a") == 0)
        limiter.release("b")
        #expect(limiter.count("b") == 0)
    }

    @Test func aWaiterGivesUpAfterItsWaitAndTheSlotStaysWithItsHolder() async {
        let limiter = HostLimiter(timer: DeadlineTimer())
        #expect(limiter.tryAcquire("slow", limit: 1))
        let started = ContinuousClock.now
        let got = await limiter.acquire("slow", limit: 1, waitingAtMost: .milliseconds(100))
        #expect(!got)
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        #expect(limiter.count("slow") == 1)
        // The holder's release frees the slot (no waiter left to hand it to).
        limiter.release("slow")
        #expect(limiter.count("slow") == 0)
        #expect(await limiter.acquire("slow", limit: 1, waitingAtMost: .zero))
    }
}
