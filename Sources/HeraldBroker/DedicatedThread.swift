internal import HeraldCore

/// Runs blocking work on a new OS thread (never on Swift's cooperative pool) and suspends the
/// calling task until it returns. The continuation is resumed exactly once, by the thread, at its
/// very end; stopping the work early is the body's business (the services signal shutdown).
enum DedicatedThread {
    static func run(name: String, _ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            NamedThread.start(name) {
                body()
                continuation.resume()
            }
        }
    }
}
