import Foundation
import HeraldCore
import HeraldMessaging
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Defect 1: a relay round stuck in a call that never returns (and ignores cancellation) is
/// abandoned at its deadline; the relay goes on, and shutdown finishes within its own deadline.
@Suite struct RelayDeadlineTests {
    final class StuckOnceRound: OutboxRelayRound {
        let rounds = Mutex(0)

        func relayRound(limit: Int) async throws -> Int {
            let round = rounds.withLock { count -> Int in
                count += 1
                return count
            }
            if round == 1 {
                // Stuck for good: a continuation nobody resumes, like a query on a dead connection.
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
            }
            return 0
        }
    }

    @Test(.timeLimit(.minutes(1))) func aStuckRoundIsAbandonedAndTheRelayGoesOn() async throws {
        var configuration = OutboxRelay.Configuration()
        configuration.concurrency = 1
        configuration.roundDeadline = .milliseconds(300)
        configuration.pollInterval = .milliseconds(20)
        configuration.errorBackoff = .milliseconds(10)
        let round = StuckOnceRound()
        let relay = OutboxRelay(round: round, configuration: configuration, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [relay], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let deadline = ContinuousClock.now + .seconds(5)
            while round.rounds.withLock({ $0 }) < 5 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(round.rounds.withLock { $0 } >= 5)
            #expect(relay.progress.lastSuccess != nil)
            let clock = ContinuousClock()
            let shutdown = try await clock.measure {
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(shutdown < .seconds(2))
        }
    }

    @Test func backoffDoublesUpToItsCap() {
        var configuration = OutboxRelay.Configuration()
        configuration.errorBackoff = .milliseconds(100)
        configuration.maximumBackoff = .seconds(1)
        #expect((1...6).map { OutboxRelay.backoffForTesting(after: $0, configuration: configuration) } == [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1),
        ])
    }
}

@Suite struct DeadlineTests {
    @Test func anOperationThatIgnoresCancellationIsAbandonedAtItsDeadline() async {
        let clock = ContinuousClock()
        let took = await clock.measure {
            await #expect(throws: DeadlineExceeded.self) {
                try await withDeadline(.milliseconds(100), "a stuck call") {
                    await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
                }
            }
        }
        #expect(took < .seconds(2))
        let value = try? await withDeadline(.seconds(5), "a quick call") { 42 }
        #expect(value == 42)
    }
}
