/// Publisher-confirm bookkeeping for one channel in confirm mode. Pure value type: the connection
/// thread owns one per connection and feeds it what it writes and what the broker answers.
///
/// AMQP numbers the publishes on a confirm channel 1, 2, 3, ... (per connection). The broker
/// answers each exactly once with `basic.ack` or `basic.nack`, either for one sequence number or,
/// with `multiple`, for every outstanding number up to and including the tag. A batch (one
/// `publish([...])` call) succeeds when all its messages are acked and fails as soon as one of them
/// is nacked; when the connection drops, every batch still waiting fails.
///
/// Sequence numbers are contiguous, so outstanding publishes live in an array indexed by
/// `sequence - baseSequence`: a single confirm is O(1), a multiple confirm is O(confirmed).
struct ConfirmTracker: Sendable {
    typealias BatchID = UInt64

    enum Outcome: Sendable, Hashable {
        case confirmed(BatchID)
        case nacked(BatchID)
    }

    private struct BatchState: Sendable {
        var outstanding: Int
        var failed: Bool
    }

    /// The sequence number the next publish gets.
    private(set) var nextSequence: UInt64 = 1
    /// Sequence number of `slots[0]`.
    private var baseSequence: UInt64 = 1
    /// Batch of each published sequence number, `nil` once confirmed.
    private var slots: [BatchID?] = []
    /// Index of the first slot that may still be outstanding.
    private var head = 0
    private var batches: [BatchID: BatchState] = [:]

    init() {}

    /// Batches with at least one unconfirmed message.
    var pendingBatchCount: Int { batches.count }
    var isEmpty: Bool { batches.isEmpty }

    /// Registers a batch of `count` publishes about to be written, in order. Returns their
    /// sequence numbers. An empty batch is not registered (it is trivially confirmed).
    @discardableResult
    mutating func register(batch: BatchID, count: Int) -> ClosedRange<UInt64>? {
        precondition(count >= 0)
        guard count > 0 else { return nil }
        precondition(batches[batch] == nil, "batch \(batch) registered twice")
        let first = nextSequence
        batches[batch] = BatchState(outstanding: count, failed: false)
        slots.append(contentsOf: repeatElement(Optional(batch), count: count))
        nextSequence += UInt64(count)
        return first...(nextSequence - 1)
    }

    /// `basic.ack` from the broker.
    mutating func ack(deliveryTag: UInt64, multiple: Bool) -> [Outcome] {
        settle(deliveryTag: deliveryTag, multiple: multiple, nacked: false)
    }

    /// `basic.nack` from the broker.
    mutating func nack(deliveryTag: UInt64, multiple: Bool) -> [Outcome] {
        settle(deliveryTag: deliveryTag, multiple: multiple, nacked: true)
    }

    /// The connection is gone: every batch with an unconfirmed message has failed (the broker may
    /// or may not have them). Resets the tracker for the next connection, which restarts at 1.
    mutating func connectionLost() -> [BatchID] {
        let failed = batches.filter { !$0.value.failed }.map(\.key).sorted()
        self = ConfirmTracker()
        return failed
    }

    private mutating func settle(deliveryTag: UInt64, multiple: Bool, nacked: Bool) -> [Outcome] {
        var outcomes: [Outcome] = []
        if multiple {
            // Tag 0 with `multiple` means "everything outstanding".
            let upTo = deliveryTag == 0 ? nextSequence - 1 : min(deliveryTag, nextSequence - 1)
            guard upTo >= baseSequence else { return [] }
            let lastIndex = Int(upTo - baseSequence)
            var index = head
            while index <= lastIndex {
                resolve(index: index, nacked: nacked, into: &outcomes)
                index += 1
            }
        } else {
            guard deliveryTag >= baseSequence, deliveryTag < nextSequence else { return [] }
            resolve(index: Int(deliveryTag - baseSequence), nacked: nacked, into: &outcomes)
        }
        compact()
        return outcomes
    }

    private mutating func resolve(index: Int, nacked: Bool, into outcomes: inout [Outcome]) {
        guard index >= head, let batch = slots[index] else { return }  // already confirmed: ignore
        slots[index] = nil
        guard var state = batches[batch] else { return }
        state.outstanding -= 1
        if nacked && !state.failed {
            state.failed = true
            outcomes.append(.nacked(batch))
        }
        if state.outstanding == 0 {
            batches[batch] = nil
            if !state.failed { outcomes.append(.confirmed(batch)) }
        } else {
            batches[batch] = state
        }
    }

    private mutating func compact() {
        while head < slots.count, slots[head] == nil { head += 1 }
        if head == slots.count {
            baseSequence += UInt64(head)
            slots.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= slots.count {
            baseSequence += UInt64(head)
            slots.removeFirst(head)
            head = 0
        }
    }
}
