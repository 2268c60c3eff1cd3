import Testing
@testable import HeraldBroker

@Suite("ConfirmTracker")
struct ConfirmTrackerTests {
    @Test func sequenceNumbersAreContiguousAcrossBatches() {
        var tracker = ConfirmTracker()
        #expect(tracker.register(batch: 1, count: 3) == 1...3)
        #expect(tracker.register(batch: 2, count: 2) == 4...5)
        #expect(tracker.register(batch: 3, count: 0) == nil)
        #expect(tracker.nextSequence == 6)
        #expect(tracker.pendingBatchCount == 2)
    }

    @Test func singleAcksConfirmABatchOnlyWhenAllAreAcked() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 7, count: 3)
        #expect(tracker.ack(deliveryTag: 2, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 1, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 3, multiple: false) == [.confirmed(7)])
        #expect(tracker.isEmpty)
    }

    @Test func multipleAckSpanningBatchesConfirmsOnlyCompletedOnes() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 1, count: 2)  // 1...2
        tracker.register(batch: 2, count: 3)  // 3...5
        tracker.register(batch: 3, count: 2)  // 6...7
        // Acks 1...4: batch 1 done, batch 2 partially.
        #expect(tracker.ack(deliveryTag: 4, multiple: true) == [.confirmed(1)])
        // Single ack of 6, then multiple up to 7 covers 5 and 7 (6 already done).
        #expect(tracker.ack(deliveryTag: 6, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 7, multiple: true) == [.confirmed(2), .confirmed(3)])
        #expect(tracker.isEmpty)
    }

    @Test func duplicateAndUnknownConfirmsAreIgnored() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 1, count: 2)
        #expect(tracker.ack(deliveryTag: 1, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 1, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 99, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 0, multiple: false) == [])
        #expect(tracker.pendingBatchCount == 1)
        #expect(tracker.ack(deliveryTag: 2, multiple: false) == [.confirmed(1)])
        #expect(tracker.ack(deliveryTag: 2, multiple: true) == [])
    }

    @Test func nackFailsTheBatchOnceAndRestOfItIsAbsorbed() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 1, count: 3)
        tracker.register(batch: 2, count: 1)
        #expect(tracker.nack(deliveryTag: 2, multiple: false) == [.nacked(1)])
        #expect(tracker.ack(deliveryTag: 1, multiple: false) == [])
        #expect(tracker.ack(deliveryTag: 4, multiple: true) == [.confirmed(2)])
        #expect(tracker.isEmpty)
    }

    @Test func multipleNackFailsEveryCoveredBatch() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 1, count: 2)
        tracker.register(batch: 2, count: 2)
        tracker.register(batch: 3, count: 2)
        #expect(tracker.nack(deliveryTag: 3, multiple: true) == [.nacked(1), .nacked(2)])
        #expect(tracker.ack(deliveryTag: 6, multiple: true) == [.confirmed(3)])
        #expect(tracker.isEmpty)
    }

    @Test func multipleWithTagZeroMeansEverythingOutstanding() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 1, count: 2)
        tracker.register(batch: 2, count: 2)
        #expect(tracker.ack(deliveryTag: 0, multiple: true) == [.confirmed(1), .confirmed(2)])
    }

    @Test func connectionLostFailsPendingAndRestartsNumbering() {
        var tracker = ConfirmTracker()
        tracker.register(batch: 1, count: 2)
        tracker.register(batch: 2, count: 2)
        tracker.register(batch: 3, count: 1)
        #expect(tracker.ack(deliveryTag: 2, multiple: true) == [.confirmed(1)])
        #expect(tracker.nack(deliveryTag: 5, multiple: false) == [.nacked(3)])
        #expect(tracker.connectionLost() == [2])  // batch 3 was already reported as nacked
        #expect(tracker.isEmpty)
        #expect(tracker.register(batch: 4, count: 1) == 1...1)
        #expect(tracker.ack(deliveryTag: 1, multiple: false) == [.confirmed(4)])
    }

    @Test func manyBatchesWithInterleavedConfirmsStayConsistent() {
        var tracker = ConfirmTracker()
        var confirmed: Set<UInt64> = []
        // 2,000 batches of 1...5 messages; confirm with a mix of single and multiple acks.
        var next: UInt64 = 1
        for batch in UInt64(1)...2000 {
            tracker.register(batch: batch, count: Int(batch % 5) + 1)
            next += batch % 5 + 1
        }
        var tag: UInt64 = 1
        while tag < next {
            let outcomes: [ConfirmTracker.Outcome]
            if tag % 7 == 0 {
                outcomes = tracker.ack(deliveryTag: tag, multiple: false)
                tag += 1
            } else {
                let upTo = min(tag + 10, next - 1)
                outcomes = tracker.ack(deliveryTag: upTo, multiple: true)
                tag = upTo + 1
            }
            for case .confirmed(let id) in outcomes {
                #expect(confirmed.insert(id).inserted)
            }
        }
        #expect(confirmed.count == 2000)
        #expect(tracker.isEmpty)
    }
}
