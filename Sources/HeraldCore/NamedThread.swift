import Foundation

/// Herald's own OS threads (the AMQP connections, the curl loop, the deadline timer), started with
/// a name that `top -H`, `perf` and `/proc/PID/task/*/comm` show.
///
/// Foundation's `Thread.name`, set before `start()`, never reaches the OS thread on Linux: such
/// threads kept the name of the event-loop thread that started them, so a profile could not tell
/// the curl loop from the event loop. The name is set from inside the thread instead.
public enum NamedThread {
    /// Linux keeps at most 15 bytes of a thread's name (16 with the terminating NUL); a longer name
    /// is cut, at a character boundary.
    public static let maximumNameBytes = 15

    /// Runs `body` on a new OS thread named `name` (cut to `maximumNameBytes`).
    public static func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            setCurrentName(name)
            body()
        }
        thread.name = name
        thread.start()
    }

    /// The name the OS keeps for `name`.
    public static func osName(_ name: String) -> String {
        var cut = ""
        for character in name where cut.utf8.count + character.utf8.count <= maximumNameBytes { cut.append(character) }
        return cut
    }

    /// Names the calling thread. Foundation passes a running thread's new name on to the OS
    /// (`pthread_setname_np`, which refuses a name longer than the OS keeps: hence the cut).
    public static func setCurrentName(_ name: String) {
        Thread.current.name = osName(name)
    }

    /// The OS's name of the calling thread (Linux: `/proc/thread-self/comm`).
    public static func currentName() -> String? {
        guard let comm = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) else { return nil }
        return comm.hasSuffix("\n") ? String(comm.dropLast()) : comm
    }
}
