internal import CRabbitMQShim

/// Wakes a connection thread sleeping in `wait(socket:timeoutMilliseconds:)`: a non-blocking pipe
/// polled together with the AMQP socket. Signalling is a one-byte write, safe from any thread or
/// task and never blocking (a full pipe already means a wake-up is pending).
final class WakeSignal: Sendable {
    private let readDescriptor: Int32
    private let writeDescriptor: Int32

    struct Readiness: Sendable, Hashable {
        var socket: Bool
        var woken: Bool
        var failed: Bool
    }

    init() {
        var r: Int32 = -1
        var w: Int32 = -1
        let rc = herald_wake_pipe(&r, &w)
        precondition(rc == 0, "cannot create the broker wake-up pipe (out of file descriptors?)")
        readDescriptor = r
        writeDescriptor = w
    }

    deinit {
        herald_close_fd(readDescriptor)
        herald_close_fd(writeDescriptor)
    }

    func signal() {
        herald_wake_signal(writeDescriptor)
    }

    /// Blocks the calling (connection) thread until the socket (if >= 0) is readable, `signal()`
    /// was called, or the timeout passes. Consumes pending wake-ups.
    func wait(socket: Int32, timeoutMilliseconds: Int32) -> Readiness {
        let rc = herald_wait_readable(socket, readDescriptor, timeoutMilliseconds)
        if rc < 0 { return Readiness(socket: false, woken: false, failed: true) }
        let woken = rc & HERALD_READY_WAKE != 0
        if woken { herald_wake_drain(readDescriptor) }
        return Readiness(socket: rc & HERALD_READY_SOCKET != 0, woken: woken, failed: false)
    }
}
