import Testing
@testable import HeraldBroker

@Suite("ConsumerStateMachine")
struct ConsumerStateMachineTests {
    typealias Machine = ConsumerStateMachine<String>

    static func message(_ tag: UInt64, generation: UInt64 = 1) -> IncomingMessage {
        IncomingMessage(deliveryTag: DeliveryTag(value: tag, generation: generation), body: Array("m\(tag)".utf8),
                        exchange: "", routingKey: "q", redelivered: false, messageID: nil, headers: [:])
    }

    static func running() -> Machine {
        var m = Machine()
        _ = m.start()
        #expect(m.connected() == 1)
        return m
    }

    @Test func deliveriesGoToWaitersFirstThenTheBuffer() {
        var m = Self.running()
        let w = m.makeWaiterID()
        guard case .stored = m.wait(id: w, waiter: "w") else { Issue.record("expected stored"); return }
        guard case .resume("w", let first) = m.delivered(Self.message(1)) else { Issue.record("expected resume"); return }
        #expect(first.deliveryTag.value == 1)
        guard case .buffered = m.delivered(Self.message(2)) else { Issue.record("expected buffered"); return }
        #expect(m.bufferedCount == 1)
        guard case .deliver(let second) = m.pollNext() else { Issue.record("expected deliver"); return }
        #expect(second.deliveryTag.value == 2)
        guard case .suspend = m.pollNext() else { Issue.record("expected suspend"); return }
        #expect(m.unsettled == [1, 2])
    }

    @Test func settlesAreQueuedOnceAndOnlyTheFirstWakes() {
        var m = Self.running()
        _ = m.delivered(Self.message(1))
        _ = m.delivered(Self.message(2))
        _ = m.pollNext()
        _ = m.pollNext()
        #expect(m.settle(DeliveryTag(value: 1, generation: 1), .ack) == .wakeThread)
        #expect(m.settle(DeliveryTag(value: 2, generation: 1), .reject(requeue: false)) == .queued)
        #expect(m.settle(DeliveryTag(value: 2, generation: 1), .ack) == .dropped)  // already settled
        #expect(m.settle(DeliveryTag(value: 3, generation: 1), .ack) == .dropped)  // never handed out
        let work = m.takeWork()
        #expect(work.commands == [.ack(1), .reject(2, requeue: false)])
        #expect(!work.isShuttingDown)
    }

    @Test func reconnectDropsBufferAndStaleSettles() {
        var m = Self.running()
        _ = m.delivered(Self.message(1))
        _ = m.delivered(Self.message(2))
        guard case .deliver(let handedOut) = m.pollNext() else { Issue.record("expected deliver"); return }
        m.connectionLost()
        #expect(m.bufferedCount == 0)
        #expect(m.settle(handedOut.deliveryTag, .ack) == .dropped)
        #expect(m.connected() == 2)
        // The new connection reuses tag 1: an ack for the old generation must not touch it.
        _ = m.delivered(Self.message(1, generation: 2))
        _ = m.pollNext()
        #expect(m.settle(DeliveryTag(value: 1, generation: 1), .ack) == .dropped)
        #expect(m.settle(DeliveryTag(value: 1, generation: 2), .ack) == .wakeThread)
    }

    @Test func deliveryFromAnOldGenerationIsRejected() {
        var m = Self.running()
        guard case .reject = m.delivered(Self.message(1, generation: 0)) else { Issue.record("expected reject"); return }
    }

    @Test func cancellingAWaiter() {
        var m = Self.running()
        let w = m.makeWaiterID()
        _ = m.wait(id: w, waiter: "w")
        #expect(m.cancelWait(id: w) == "w")
        guard case .buffered = m.delivered(Self.message(1)) else { Issue.record("cancelled waiter must not get it"); return }

        let early = m.makeWaiterID()
        #expect(m.cancelWait(id: early) == nil)
        guard case .cancelled = m.wait(id: early, waiter: "early") else { Issue.record("expected cancelled"); return }
    }

    @Test func shutdownRequeuesTheBufferAndDrainsHandedOutDeliveries() {
        var m = Self.running()
        let w = m.makeWaiterID()
        _ = m.delivered(Self.message(1))
        _ = m.delivered(Self.message(2))
        _ = m.delivered(Self.message(3))
        _ = m.pollNext()  // tag 1 handed out
        let (waiters, wake) = m.beginShutdown()
        #expect(waiters.isEmpty)
        #expect(wake)
        guard case .finished = m.pollNext() else { Issue.record("next() must return nil"); return }
        guard case .finished = m.wait(id: w, waiter: "w") else { Issue.record("next() must return nil"); return }
        guard case .reject = m.delivered(Self.message(4)) else { Issue.record("deliveries during shutdown are rejected"); return }
        var work = m.takeWork()
        #expect(work.commands == [.reject(2, requeue: true), .reject(3, requeue: true)])
        #expect(work.isShuttingDown && !work.isDrained)
        #expect(m.settle(DeliveryTag(value: 1, generation: 1), .ack) == .wakeThread)
        work = m.takeWork()
        #expect(work.commands == [.ack(1)])
        #expect(work.isDrained)
    }

    @Test func shutdownResumesParkedWaiters() {
        var m = Self.running()
        _ = m.wait(id: m.makeWaiterID(), waiter: "a")
        _ = m.wait(id: m.makeWaiterID(), waiter: "b")
        let (waiters, _) = m.beginShutdown()
        #expect(waiters == ["a", "b"])
        #expect(m.finish().isEmpty)
    }

    @Test func bufferStaysBoundedUnderSteadyLoad() {
        var m = Self.running()
        var tag: UInt64 = 0
        // Keep ~10 buffered at all times for many rounds; the backing storage must not grow.
        for _ in 0..<10 { tag += 1; _ = m.delivered(Self.message(tag)) }
        for _ in 0..<10_000 {
            tag += 1
            _ = m.delivered(Self.message(tag))
            guard case .deliver(let msg) = m.pollNext() else { Issue.record("expected deliver"); return }
            _ = m.settle(msg.deliveryTag, .ack)
            _ = m.takeWork()
        }
        #expect(m.bufferedCount == 10)
        #expect(m.unsettled.isEmpty)
    }
}
