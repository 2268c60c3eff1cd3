import Foundation
import HeraldCore
import Synchronization
import Testing

@Suite struct DeadlineTimerTests {
    @Test func callbacksFireInTheOrderOfTheirInstantsAndCancelledOnesNever() async throws {
        let timer = DeadlineTimer()
        let fired = Mutex<[Int]>([])
        let start = ContinuousClock.now
        let cancelled = timer.schedule(at: start + .milliseconds(20)) { fired.withLock { $0.append(0) } }
        for (index, offset) in [(3, 90), (1, 30), (2, 60)] {
            _ = timer.schedule(at: start + .milliseconds(offset)) { fired.withLock { $0.append(index) } }
        }
        timer.cancel(cancelled)
        #expect(timer.pending == 3)
        // Polled: the suite runs beside others on two cores.
        for _ in 0..<100 where fired.withLock({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(fired.withLock { $0 } == [1, 2, 3])
        #expect(timer.pending == 0)
    }

    @Test func anEarlierDeadlineWakesTheTimerEarlier() async throws {
        let timer = DeadlineTimer()
        let late = Mutex<ContinuousClock.Instant?>(nil)
        let early = Mutex<ContinuousClock.Instant?>(nil)
        let start = ContinuousClock.now
        _ = timer.schedule(at: start + .seconds(5)) { late.withLock { $0 = .now } }
        _ = timer.schedule(at: start + .milliseconds(50)) { early.withLock { $0 = .now } }
        for _ in 0..<40 where early.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(50)) }
        let firedAt = try #require(early.withLock { $0 })
        #expect(firedAt - start < .seconds(2))
        #expect(late.withLock { $0 } == nil)
    }

    @Test func aCallThatIgnoresCancellationIsAbandonedAtItsDeadline() async throws {
        let start = ContinuousClock.now
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(100), "a stuck call") {
                // Suspended, ignoring cancellation, as a call stuck inside a library may be (it holds no thread).
                await withCheckedContinuation { continuation in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 10) { continuation.resume() }
                }
                return 1
            }
        }
        // Long before the call ends (10 s); the bound leaves room for a loaded two-core machine.
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
