import HeraldCore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The snapshot in force. Readers take the whole snapshot once per unit of work (a request, an
/// attempt), so a reload never mixes two configurations inside one.
public final class ConfigStore: Sendable {
    private let current: Mutex<ConfigSnapshot>

    public init(_ snapshot: ConfigSnapshot) {
        current = Mutex(snapshot)
    }

    public var snapshot: ConfigSnapshot { current.withLock { $0 } }

    func replace(with snapshot: ConfigSnapshot) {
        current.withLock { $0 = snapshot }
    }
}

/// Re-reads the configuration directory on SIGHUP. A directory with any error never replaces the
/// snapshot in force: the errors are logged and counted, and the old configuration keeps serving.
public final class ConfigReloader: Service, Sendable {
    public typealias Preparation = @Sendable (ConfigSnapshot) async throws -> Void
    public typealias Listener = @Sendable (ConfigSnapshot) async -> Void

    private let loader: ConfigLoader
    private let store: ConfigStore
    private let prepare: Preparation?
    private let listener: Listener?
    private let logger: Logger
    private let successes = Counter(label: "herald_config_reloads_total")
    private let failures = Counter(label: "herald_config_reload_failures_total")

    /// `prepare` runs before a valid snapshot is swapped in (declare the queues of new channels, so
    /// nothing is routed to a queue that doesn't exist yet); if it throws, the reload is refused.
    /// `listener` runs after the swap (start consumers for new channels…).
    public init(
        loader: ConfigLoader, store: ConfigStore, logger: Logger, prepare: Preparation? = nil, listener: Listener? = nil
    ) {
        self.loader = loader
        self.store = store
        self.prepare = prepare
        self.listener = listener
        self.logger = logger
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        logger.info("configuration reloads on SIGHUP", metadata: ["config.directory": "\(loader.directory)"])
        for await _ in signals.cancelOnGracefulShutdown() {
            await reload()
        }
    }

    /// Loads, validates and swaps; returns the errors when the directory was refused.
    @discardableResult
    public func reload() async -> Result<ConfigSnapshot, ConfigErrors> {
        let previous = store.snapshot.version
        var result = loader.load()
        if case .success(let snapshot) = result, let prepare {
            do {
                try await prepare(snapshot)
            } catch {
                result = .failure(ConfigErrors(errors: [ConfigError(
                    file: "", line: 0, column: 0, message: "the new configuration could not be prepared: \(error)")]))
            }
        }
        switch result {
        case .success(let snapshot):
            store.replace(with: snapshot)
            successes.increment()
            logger.info("configuration reloaded", metadata: [
                "config.version": "\(snapshot.version)", "config.previous": "\(previous)",
                "channels": "\(snapshot.registry.names.joined(separator: ","))",
            ])
            await listener?(snapshot)
        case .failure(let errors):
            failures.increment()
            logger.error("configuration reload refused; the previous configuration stays in force", metadata: [
                "config.version": "\(previous)", "config.errors": .array(errors.errors.map { .string($0.description) }),
            ])
        }
        return result
    }
}
