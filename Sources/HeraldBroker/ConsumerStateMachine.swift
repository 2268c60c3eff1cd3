/// The Swift-facing side of `BrokerConsumer`, as a pure value type held in a `Mutex`.
///
/// Demand and bounds: the broker never has more than `prefetch` unacked deliveries out on the
/// channel (basic.qos), so `buffered + unsettled <= prefetch` at all times; the connection thread
/// parks deliveries here and hands one over per `next()` call. Nothing here grows without bound.
///
/// Generations: each successful connection gets a new generation. When it is lost, the broker
/// requeues every unacked delivery, so the buffered ones are dropped (they'll come again) and
/// settles for tags of older generations are ignored.
struct ConsumerStateMachine<Waiter: Sendable>: Sendable {
    enum Command: Sendable, Hashable {
        case ack(UInt64)
        /// Acks every delivery of the channel up to and including this tag (`basic.ack` with
        /// `multiple`): one frame for a run of acks.
        case ackThrough(UInt64)
        case reject(UInt64, requeue: Bool)
    }

    enum Settlement: Sendable, Hashable {
        case ack
        case reject(requeue: Bool)
    }

    enum Lifecycle: Sendable, Hashable {
        case idle, running, shuttingDown, finished
    }

    enum PollAction {
        case deliver(IncomingMessage)
        /// Shut down: `next()` returns nil.
        case finished
        /// Nothing buffered: wait.
        case suspend
    }

    enum WaitAction {
        case deliver(IncomingMessage)
        case finished
        case cancelled
        /// The waiter is stored; the thread or shutdown will resume it.
        case stored
    }

    enum DeliveryAction {
        /// Hand the message to this waiting `next()` call.
        case resume(Waiter, IncomingMessage)
        case buffered
        /// Shutting down (or stale): the thread must reject it with requeue right away.
        case reject
    }

    enum SettleAction: Hashable {
        case wakeThread
        /// Queued; a wake-up is already pending.
        case queued
        /// Unknown, stale (older connection) or already settled: ignored.
        case dropped
    }

    struct Work {
        var commands: [Command]
        var isShuttingDown: Bool
        /// Shutting down and every handed-out delivery has been settled (and its command taken).
        var isDrained: Bool
    }

    private(set) var lifecycle: Lifecycle = .idle
    private(set) var generation: UInt64 = 0
    private(set) var isConnected = false
    private var buffer: [IncomingMessage] = []
    private var bufferHead = 0
    private var waiters: [(id: UInt64, waiter: Waiter)] = []
    private var cancelledEarly: Set<UInt64> = []
    private var nextWaiterID: UInt64 = 1
    /// Tags of the current generation handed to Swift and not settled yet.
    private(set) var unsettled: Set<UInt64> = []
    private var commands: [Command] = []

    init() {}

    var bufferedCount: Int { buffer.count - bufferHead }
    var waiterCount: Int { waiters.count }

    mutating func start() -> Bool {
        guard lifecycle == .idle else { return false }
        lifecycle = .running
        return true
    }

    mutating func makeWaiterID() -> UInt64 {
        defer { nextWaiterID += 1 }
        return nextWaiterID
    }

    /// Fast path of `next()`, before creating a continuation.
    mutating func pollNext() -> PollAction {
        switch lifecycle {
        case .shuttingDown, .finished:
            return .finished
        case .idle, .running:
            if let message = popBuffered() { return .deliver(message) }
            return .suspend
        }
    }

    mutating func wait(id: UInt64, waiter: Waiter) -> WaitAction {
        if cancelledEarly.remove(id) != nil { return .cancelled }
        switch pollNext() {
        case .deliver(let message): return .deliver(message)
        case .finished: return .finished
        case .suspend:
            waiters.append((id, waiter))
            return .stored
        }
    }

    mutating func cancelWait(id: UInt64) -> Waiter? {
        if let index = waiters.firstIndex(where: { $0.id == id }) {
            return waiters.remove(at: index).waiter
        }
        if id < nextWaiterID { cancelledEarly.insert(id) }
        return nil
    }

    mutating func clearCancelled(id: UInt64) {
        cancelledEarly.remove(id)
    }

    /// The thread connected and started consuming. Returns the new generation.
    mutating func connected() -> UInt64 {
        generation += 1
        isConnected = true
        return generation
    }

    /// The connection is gone: the broker requeues all its unacked deliveries.
    mutating func connectionLost() {
        isConnected = false
        buffer.removeAll()
        bufferHead = 0
        unsettled.removeAll()
        commands.removeAll()
    }

    /// A delivery arrived on the connection thread.
    mutating func delivered(_ message: IncomingMessage) -> DeliveryAction {
        guard lifecycle == .running || lifecycle == .idle,
              message.deliveryTag.generation == generation
        else { return .reject }
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst().waiter
            unsettled.insert(message.deliveryTag.value)
            return .resume(waiter, message)
        }
        buffer.append(message)
        return .buffered
    }

    /// `ack` / `reject` from any task.
    mutating func settle(_ tag: DeliveryTag, _ settlement: Settlement) -> SettleAction {
        guard tag.generation == generation, isConnected, unsettled.remove(tag.value) != nil else {
            return .dropped
        }
        switch settlement {
        case .ack: commands.append(.ack(tag.value))
        case .reject(let requeue): commands.append(.reject(tag.value, requeue: requeue))
        }
        return commands.count == 1 ? .wakeThread : .queued
    }

    /// The thread takes the queued settles. Acks below every delivery still open here go as one
    /// `ackThrough` (`Self.coalesced`).
    mutating func takeWork() -> Work {
        var lowestOpen = unsettled.min() ?? UInt64.max
        if bufferHead < buffer.count { lowestOpen = min(lowestOpen, buffer[bufferHead].deliveryTag.value) }
        let taken = Self.coalesced(commands, lowestOpen: lowestOpen)
        commands.removeAll(keepingCapacity: true)
        let shuttingDown = lifecycle == .shuttingDown
        return Work(commands: taken, isShuttingDown: shuttingDown, isDrained: shuttingDown && unsettled.isEmpty)
    }

    /// `commands` with the acks of tags below `lowestOpen` (the oldest delivery handed out and not
    /// settled, or buffered) and below every reject among them replaced by one `ackThrough` of the
    /// highest, sent first. Sound because delivery tags grow along the channel: every tag below that
    /// bound was delivered and is either acked in this batch or was settled by a frame already sent,
    /// so the multiple ack covers exactly these acks. Fewer than two such acks: unchanged.
    static func coalesced(_ commands: [Command], lowestOpen: UInt64) -> [Command] {
        var bound = lowestOpen
        for case .reject(let tag, _) in commands { bound = min(bound, tag) }
        var highest: UInt64 = 0
        var covered = 0
        for case .ack(let tag) in commands where tag < bound {
            highest = max(highest, tag)
            covered += 1
        }
        guard covered >= 2 else { return commands }
        var result: [Command] = [.ackThrough(highest)]
        result.reserveCapacity(commands.count - covered + 1)
        for command in commands {
            if case .ack(let tag) = command, tag < bound { continue }
            result.append(command)
        }
        return result
    }

    /// Graceful shutdown: `next()` returns nil from now on; buffered deliveries go back to the
    /// broker (reject + requeue); handed-out ones may still be settled until the grace period ends.
    /// Returns the waiters to resume with `nil` and whether the thread must be woken.
    mutating func beginShutdown() -> (waiters: [Waiter], wakeThread: Bool) {
        let parked = waiters.map(\.waiter)
        waiters.removeAll()
        switch lifecycle {
        case .idle:
            lifecycle = .finished
            return (parked, false)
        case .running:
            lifecycle = .shuttingDown
            while let message = popBuffered(markUnsettled: false) {
                commands.append(.reject(message.deliveryTag.value, requeue: true))
            }
            return (parked, true)
        case .shuttingDown, .finished:
            return (parked, false)
        }
    }

    /// The connection thread is gone. Returns the waiters to resume with `nil`.
    mutating func finish() -> [Waiter] {
        lifecycle = .finished
        connectionLost()
        let parked = waiters.map(\.waiter)
        waiters.removeAll()
        return parked
    }

    private mutating func popBuffered(markUnsettled: Bool = true) -> IncomingMessage? {
        guard bufferHead < buffer.count else { return nil }
        let message = buffer[bufferHead]
        bufferHead += 1
        if bufferHead == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            bufferHead = 0
        } else if bufferHead >= 64, bufferHead * 2 >= buffer.count {
            // Never fully drained under steady load: compact so the array stays prefetch-sized.
            buffer.removeFirst(bufferHead)
            bufferHead = 0
        }
        if markUnsettled { unsettled.insert(message.deliveryTag.value) }
        return message
    }
}
