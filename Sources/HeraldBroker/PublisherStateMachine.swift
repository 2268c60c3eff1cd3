/// The Swift-facing side of `BrokerPublisher`, as a pure value type held in a `Mutex`.
///
/// It owns the queue of commands waiting for the connection thread and the one-shot waiters of the
/// `publish` / `declare` calls. Every waiter is removed from here by exactly one party (the thread
/// on a confirm, the cancellation handler, or shutdown) and resumed by that party only, so a
/// continuation can neither leak nor be resumed twice. `Waiter` is generic so tests can use plain values.
struct PublisherStateMachine<Waiter: Sendable>: Sendable {
    enum Command: Sendable {
        case publish(id: UInt64, messages: [OutgoingMessage])
        case declare(id: UInt64, topology: Topology)

        var id: UInt64 {
            switch self {
            case .publish(let id, _), .declare(let id, _): id
            }
        }
    }

    enum Lifecycle: Sendable, Hashable {
        /// `run()` not called yet: commands queue up.
        case idle
        case running
        /// Shutdown requested: no new commands; the thread flushes and waits for confirms.
        case shuttingDown
        case finished
    }

    enum SubmitAction {
        /// Queued; the connection thread must be woken.
        case wakeThread
        /// Queued behind other commands; the thread has a wake-up pending already.
        case none
        /// Not queued: resume the waiter with this error.
        case fail(BrokerError)
        /// Not queued: the call was cancelled before it got here; resume with `CancellationError`.
        case cancelled
    }

    enum ShutdownAction {
        case wakeThread
        /// Shut down before `run()`: nothing to wake; fail these waiters.
        case failWaiters([Waiter])
        case none
    }

    private(set) var lifecycle: Lifecycle = .idle
    private(set) var isConnected = false
    /// Everything declared on each (re)connect.
    private(set) var topology: Topology
    private var nextID: UInt64 = 1
    private var queue: [Command] = []
    private var waiters: [UInt64: Waiter] = [:]
    private var cancelledEarly: Set<UInt64> = []

    init(topology: Topology) {
        self.topology = topology
    }

    var queuedCommandCount: Int { queue.count }
    var waiterCount: Int { waiters.count }

    /// `run()` was called. Returns `false` if it was called before (or after shutdown).
    mutating func start() -> Bool {
        guard lifecycle == .idle else { return false }
        lifecycle = .running
        return true
    }

    mutating func makeID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    mutating func submit(_ command: Command, waiter: Waiter) -> SubmitAction {
        if cancelledEarly.remove(command.id) != nil { return .cancelled }
        switch lifecycle {
        case .idle, .running:
            waiters[command.id] = waiter
            queue.append(command)
            // Only the first command after a `takeCommands` needs a wake-up: the thread takes all.
            return queue.count == 1 ? .wakeThread : .none
        case .shuttingDown, .finished:
            return .fail(.shutdown())
        }
    }

    /// The calling task was cancelled. Returns the waiter to resume with `CancellationError`, if it
    /// was still here; a command not yet handed to the thread is withdrawn (never published).
    mutating func cancel(id: UInt64) -> Waiter? {
        guard let waiter = waiters.removeValue(forKey: id) else {
            // Either already completed (nothing to do) or not submitted yet: remember it, so a
            // later `submit` resumes right away instead of waiting forever.
            if id < nextID, !queue.contains(where: { $0.id == id }) {
                cancelledEarly.insert(id)
            }
            return nil
        }
        queue.removeAll { $0.id == id }
        return waiter
    }

    /// Forget an early-cancellation marker whose `submit` will never come (bookkeeping hygiene).
    mutating func clearCancelled(id: UInt64) {
        cancelledEarly.remove(id)
    }

    /// The thread finished a command (confirmed, nacked, declared, failed). Returns its waiter if
    /// the caller is still waiting.
    mutating func complete(id: UInt64) -> Waiter? {
        waiters.removeValue(forKey: id)
    }

    /// The thread takes every queued command, in order.
    mutating func takeCommands() -> [Command] {
        guard !queue.isEmpty else { return [] }
        let taken = queue
        queue.removeAll(keepingCapacity: true)
        return taken
    }

    /// The thread could not write these (connection lost): they go back to the front, in order,
    /// and are written on the next connection. Commands whose caller cancelled meanwhile are dropped.
    mutating func requeueFront(_ commands: [Command]) {
        let alive = commands.filter { waiters[$0.id] != nil }
        queue.insert(contentsOf: alive, at: 0)
    }

    mutating func connected() {
        isConnected = true
    }

    mutating func disconnected() {
        isConnected = false
    }

    mutating func declared(_ more: Topology) {
        topology.merge(more)
    }

    mutating func beginShutdown() -> ShutdownAction {
        switch lifecycle {
        case .idle:
            lifecycle = .finished
            return .failWaiters(drainAll())
        case .running:
            lifecycle = .shuttingDown
            return .wakeThread
        case .shuttingDown, .finished:
            return .none
        }
    }

    /// The connection thread is gone. Returns every waiter left; they fail with `shutdown`.
    mutating func finish() -> [Waiter] {
        lifecycle = .finished
        isConnected = false
        return drainAll()
    }

    private mutating func drainAll() -> [Waiter] {
        let all = queue.compactMap { waiters.removeValue(forKey: $0.id) } + Array(waiters.values)
        queue.removeAll()
        waiters.removeAll()
        return all
    }
}
