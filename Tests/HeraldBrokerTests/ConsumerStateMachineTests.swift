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

    /// Hands out deliveries 1...n (as `next()` calls would).
    static func handedOut(_ n: UInt64, buffered extra: UInt64 = 0) -> Machine {
        var m = Self.running()
        for tag in 1...(n + extra) { _ = m.delivered(Self.message(tag)) }
        for _ in 0..<n { _ = m.pollNext() }
        return m
    }

    @Test func acksBelowEveryOpenDeliveryGoAsOneFrame() {
        var m = Self.handedOut(5)
        for tag: UInt64 in [2, 1, 4] { _ = m.settle(DeliveryTag(value: tag, generation: 1), .ack) }
        // 3 is still being worked on: 1 and 2 go as one multiple ack, 4 on its own.
        #expect(m.takeWork().commands == [.ackThrough(2), .ack(4)])
        for tag: UInt64 in [3, 5] { _ = m.settle(DeliveryTag(value: tag, generation: 1), .ack) }
        #expect(m.takeWork().commands == [.ackThrough(5)])
    }

    @Test func aMultipleAckNeverCoversABufferedDelivery() {
        // 1...3 handed out, 4 and 5 waiting in the buffer: they were delivered but nobody has them.
        var m = Self.handedOut(3, buffered: 2)
        for tag: UInt64 in [1, 2, 3] { _ = m.settle(DeliveryTag(value: tag, generation: 1), .ack) }
        #expect(m.takeWork().commands == [.ackThrough(3)])
        guard case .deliver(let next) = m.pollNext() else { Issue.record("expected deliver"); return }
        #expect(next.deliveryTag.value == 4)
    }

    @Test func aMultipleAckNeverCoversAReject() {
        var m = Self.handedOut(4)
        _ = m.settle(DeliveryTag(value: 1, generation: 1), .ack)
        _ = m.settle(DeliveryTag(value: 3, generation: 1), .reject(requeue: true))
        _ = m.settle(DeliveryTag(value: 2, generation: 1), .ack)
        _ = m.settle(DeliveryTag(value: 4, generation: 1), .ack)
        // 4 is above the reject of 3: a multiple ack through 4 would ack 3 instead of requeueing it.
        #expect(m.takeWork().commands == [.ackThrough(2), .reject(3, requeue: true), .ack(4)])
    }

    @Test func aSingleAckStaysAsItIs() {
        var m = Self.handedOut(3)
        _ = m.settle(DeliveryTag(value: 1, generation: 1), .ack)
        _ = m.settle(DeliveryTag(value: 3, generation: 1), .ack)
        #expect(m.takeWork().commands == [.ack(1), .ack(3)])
    }

    @Test func coalescingKeepsEveryAckAndRejectAccountedFor() {
        // Random settle orders over a window: what a multiple ack covers is exactly the acks below
        // the open bound, and nothing open, buffered or rejected.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let window = UInt64.random(in: 2...40, using: &generator)
            var m = Self.handedOut(window, buffered: UInt64.random(in: 0...5, using: &generator))
            var settled: [UInt64: Bool] = [:]  // tag: acked (false: rejected)
            for tag in (1...window).shuffled(using: &generator).prefix(Int.random(in: 1...Int(window), using: &generator)) {
                let ack = Int.random(in: 0..<5, using: &generator) > 0
                _ = m.settle(DeliveryTag(value: tag, generation: 1), ack ? .ack : .reject(requeue: true))
                settled[tag] = ack
            }
            var acked = Set<UInt64>(), rejected = Set<UInt64>()
            for command in m.takeWork().commands {
                switch command {
                case .ack(let tag): acked.insert(tag)
                case .ackThrough(let tag):
                    // Everything through `tag` not already settled by an earlier frame: here, all of them.
                    for covered in 1...tag { #expect(settled[covered] == true, "ackThrough(\(tag)) covers \(covered)"); acked.insert(covered) }
                case .reject(let tag, _): rejected.insert(tag)
                }
            }
            #expect(acked == Set(settled.filter { $0.value }.keys))
            #expect(rejected == Set(settled.filter { !$0.value }.keys))
        }
    }
}
