import Foundation
import HeraldCore
import HeraldMessaging
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The direct publisher's rounds, against a round that records what it was asked (the real one is
/// RabbitMQ and PostgreSQL, covered by the integration tests): published rows are removed, rows whose
/// publish failed are left for the relay, a round takes everything queued, and shutdown drains.
@Suite struct DirectPublisherTests {
    final class RecordingRound: DirectPublishRound {
        struct Log { var published: [[Int64]] = []; var removed: [[Int64]] = [] }
        let log = Mutex(Log())
        let failPublishes = Mutex(0)
        let started = Mutex(0)
        let publishDelay: Duration

        init(publishDelay: Duration = .zero) { self.publishDelay = publishDelay }

        func publish(_ entries: [OutboxEntry]) async throws {
            started.withLock { $0 += 1 }
            if publishDelay > .zero { try await Task.sleep(for: publishDelay) }
            if failPublishes.withLock({ count in defer { count = max(0, count - 1) }; return count > 0 }) {
                throw BrokerUnreachable()
            }
            log.withLock { $0.published.append(entries.map(\.id)) }
        }

        func remove(_ ids: [Int64]) async throws { log.withLock { $0.removed.append(ids) } }
    }

    struct BrokerUnreachable: Error {}

    static func entries(_ ids: ClosedRange<Int64>) -> [OutboxEntry] {
        ids.map { OutboxEntry(id: $0, deliveryID: UUID(), channel: "webhook", attempt: 1, purpose: .deliver, payload: "{}") }
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test(.timeLimit(.minutes(1))) func publishedRowsAreRemovedAndAFailedPublishLeavesItsRowsToTheRelay() async throws {
        let round = RecordingRound()
        var configuration = DirectPublisher.Configuration()
        configuration.concurrency = 1
        let publisher = DirectPublisher(round: round, configuration: configuration, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [publisher], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            publisher.enqueue(Self.entries(1...3))
            try await Self.waitUntil { round.log.withLock { $0.removed.count } == 1 }
            round.failPublishes.withLock { $0 = 1 }
            publisher.enqueue(Self.entries(4...5))
            try await Self.waitUntil { round.started.withLock { $0 } == 2 && round.failPublishes.withLock { $0 } == 0 }
            publisher.enqueue(Self.entries(6...6))
            try await Self.waitUntil { round.log.withLock { $0.removed.count } == 2 }
            let log = round.log.withLock { $0 }
            #expect(log.published == [[1, 2, 3], [6]])
            #expect(log.removed == [[1, 2, 3], [6]], "rows 4 and 5 were not published: they must stay in the outbox")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test(.timeLimit(.minutes(1))) func aRoundTakesEverythingQueuedAndShutdownDrains() async throws {
        let round = RecordingRound(publishDelay: .milliseconds(300))
        var configuration = DirectPublisher.Configuration()
        configuration.concurrency = 1
        configuration.batchSize = 100
        let publisher = DirectPublisher(round: round, configuration: configuration, logger: Logger(label: "test"))
        let group = ServiceGroup(services: [publisher], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            publisher.enqueue(Self.entries(1...1))
            try await Self.waitUntil { round.started.withLock { $0 } == 1 }
            // While the first round publishes, 250 rows arrive one by one: they go out in rounds of 100, not 250.
            for id in Int64(2)...251 { publisher.enqueue(Self.entries(id...id)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let published = round.log.withLock { $0.published }
        #expect(published.flatMap { $0 } == Array(1...251), "shutdown publishes what was queued before it returns")
        // Rows that arrived while a round ran go out together in the next ones, at most 100 each
        // ([1, 100, 100, 50] unless the machine stalled the test between its enqueues).
        #expect(published.allSatisfy { $0.count <= 100 })
        #expect(published.count <= 10, "250 rows went out in \(published.count) rounds")
    }

    @Test func rowsBeyondTheCapacityAreLeftToTheRelay() async throws {
        let round = RecordingRound()
        var configuration = DirectPublisher.Configuration()
        configuration.capacity = 10
        let publisher = DirectPublisher(round: round, configuration: configuration, logger: Logger(label: "test"))
        publisher.enqueue(Self.entries(1...25))
        #expect(publisher.queued == 10)
    }
}
