import Testing
@testable import HeraldBroker

@Suite("PublisherStateMachine")
struct PublisherStateMachineTests {
    typealias Machine = PublisherStateMachine<String>

    static func message(_ n: Int) -> OutgoingMessage {
        OutgoingMessage(exchange: "", routingKey: "q", body: Array("\(n)".utf8))
    }

    @Test func onlyTheFirstQueuedCommandWakesTheThread() {
        var m = Machine(topology: .init())
        let started = m.start()
        #expect(started)
        let a = m.makeID(), b = m.makeID()
        guard case .wakeThread = m.submit(.publish(id: a, messages: [Self.message(1)]), waiter: "a") else {
            Issue.record("expected wakeThread"); return
        }
        guard case .none = m.submit(.publish(id: b, messages: [Self.message(2)]), waiter: "b") else {
            Issue.record("expected none"); return
        }
        #expect(m.takeCommands().map(\.id) == [a, b])
        #expect(m.takeCommands().isEmpty)
        let c = m.makeID()
        guard case .wakeThread = m.submit(.publish(id: c, messages: [Self.message(3)]), waiter: "c") else {
            Issue.record("expected wakeThread after take"); return
        }
        #expect(m.complete(id: a) == "a")
        #expect(m.complete(id: a) == nil)
    }

    @Test func commandsQueueBeforeRunAndBeforeConnecting() {
        var m = Machine(topology: .init())
        let id = m.makeID()
        guard case .wakeThread = m.submit(.publish(id: id, messages: [Self.message(1)]), waiter: "w") else {
            Issue.record("publish before run() must be queued"); return
        }
        #expect(!m.isConnected)
        #expect(m.queuedCommandCount == 1)
    }

    @Test func cancellingAQueuedCommandWithdrawsIt() {
        var m = Machine(topology: .init())
        _ = m.start()
        let id = m.makeID()
        _ = m.submit(.publish(id: id, messages: [Self.message(1)]), waiter: "w")
        #expect(m.cancel(id: id) == "w")
        #expect(m.takeCommands().isEmpty)
        #expect(m.cancel(id: id) == nil)
    }

    @Test func cancellationBeforeSubmitResumesImmediately() {
        var m = Machine(topology: .init())
        _ = m.start()
        let id = m.makeID()
        #expect(m.cancel(id: id) == nil)
        guard case .cancelled = m.submit(.publish(id: id, messages: [Self.message(1)]), waiter: "w") else {
            Issue.record("expected cancelled"); return
        }
        #expect(m.queuedCommandCount == 0)
        #expect(m.waiterCount == 0)
    }

    @Test func cancellingAWrittenCommandOnlyDropsTheWaiter() {
        var m = Machine(topology: .init())
        _ = m.start()
        let id = m.makeID()
        _ = m.submit(.publish(id: id, messages: [Self.message(1)]), waiter: "w")
        _ = m.takeCommands()
        #expect(m.cancel(id: id) == "w")
        #expect(m.complete(id: id) == nil)  // the confirm arrives later: nobody to resume
    }

    @Test func requeuedCommandsGoFirstAndCancelledOnesAreDropped() {
        var m = Machine(topology: .init())
        _ = m.start()
        let ids = (0..<3).map { _ in m.makeID() }
        for id in ids { _ = m.submit(.publish(id: id, messages: [Self.message(Int(id))]), waiter: "w\(id)") }
        let taken = m.takeCommands()
        let later = m.makeID()
        _ = m.submit(.publish(id: later, messages: [Self.message(9)]), waiter: "later")
        _ = m.cancel(id: ids[2])
        m.requeueFront(Array(taken[1...]))
        #expect(m.takeCommands().map(\.id) == [ids[1], later])
    }

    @Test func shutdownRejectsNewWorkAndFinishReturnsEveryWaiter() {
        var m = Machine(topology: .init())
        _ = m.start()
        let a = m.makeID(), b = m.makeID()
        _ = m.submit(.publish(id: a, messages: [Self.message(1)]), waiter: "a")
        _ = m.takeCommands()
        _ = m.submit(.publish(id: b, messages: [Self.message(2)]), waiter: "b")
        guard case .wakeThread = m.beginShutdown() else { Issue.record("expected wake"); return }
        guard case .fail(let error) = m.submit(.publish(id: m.makeID(), messages: [Self.message(3)]), waiter: "c") else {
            Issue.record("expected fail"); return
        }
        #expect(error.code == .shutdown)
        // Queued commands are still handed to the thread to flush.
        #expect(m.takeCommands().map(\.id) == [b])
        #expect(Set(m.finish()) == ["a", "b"])
        #expect(m.lifecycle == .finished)
    }

    @Test func shutdownBeforeRunFailsQueuedWaiters() {
        var m = Machine(topology: .init())
        let id = m.makeID()
        _ = m.submit(.publish(id: id, messages: [Self.message(1)]), waiter: "w")
        guard case .failWaiters(let waiters) = m.beginShutdown() else { Issue.record("expected failWaiters"); return }
        #expect(waiters == ["w"])
        let startedAgain = m.start()
        #expect(!startedAgain)
    }

    @Test func declaredTopologyIsMergedWithoutDuplicates() {
        let q = QueueDeclaration(name: "a")
        var m = Machine(topology: Topology(queues: [q]))
        m.declared(Topology(exchanges: [ExchangeDeclaration(name: "x")], queues: [q, QueueDeclaration(name: "b")]))
        #expect(m.topology.queues.map(\.name) == ["a", "b"])
        #expect(m.topology.exchanges.map(\.name) == ["x"])
    }
}
