import Foundation
import HeraldBroker
import HeraldConfig
import HeraldCore
import HeraldEngine
import HeraldHTTPRuntime
import HeraldMessaging
import HeraldProviders
import HeraldStore
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

public struct WorkerConfiguration: Sendable {
    public var postgresURL: String
    /// One AMQP URL, or the nodes of one cluster separated by commas (`AMQPEndpoint.list(urls:)`).
    public var amqpURL: String
    /// The type of the channel queues Herald declares. Default `classic`; `quorum` for a cluster.
    public var queueType: DeliveryTopology.QueueType = .classic
    /// Names this replica in the attempt log. Default: host name and process id.
    public var workerName: String = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    /// Lets providers reach loopback and private addresses. Only for local development and tests.
    public var allowPrivateTargets: Bool = false
    /// Outcomes per commit. Default 256.
    public var recordBatchSize: Int = 256
    public var postgresConnections: Int = 8
    public var secrets = SecretResolver()
    /// Whether this process also relays the outbox (retries, fallbacks and replays its settlements
    /// add). Default true: delivery then doesn't depend on a gateway running.
    public var runsRelay: Bool = true
    public var relay = OutboxRelay.Configuration()
    /// How long a message over its host's in-flight bound waits in the outbox (±50 %). Default 1 s.
    public var hostDeferral: Duration = .seconds(1)
    /// How long a message over its host's bound waits on this replica for one of the host's attempts
    /// to finish before it is deferred to the outbox (`hostDeferral`). A host that is merely busy
    /// frees a slot well within it; a slow or hanging one does not, and its messages stop holding slots.
    public var hostWait: Duration = .milliseconds(250)
    /// Where providers send delivery receipts (`HERALD_PUBLIC_URL`, `HERALD_RECEIPT_SECRET`); nil: no
    /// provider is asked for receipts.
    public var receiptLinks: ReceiptLinks?
    /// CA bundle for providers without a `ca_file` of their own; nil: the system's. Default:
    /// `CURL_CA_BUNDLE`, else `SSL_CERT_FILE`, from the environment.
    public var defaultCAFile: String? = CurlRuntime.Configuration.defaultCAFile(environment: ProcessInfo.processInfo.environment)
    /// The level of a successful attempt's log line (failures are warning or error). Default info.
    public var successLogLevel: Logger.Level = .info
    /// The management port (`/metrics`, `/healthz`, `/readyz`); nil serves none, 0 picks a free port.
    public var managementPort: Int?
    public var managementHost: String = "127.0.0.1"
    /// Text for the management port's `/metrics` (the executable plugs in its Prometheus registry).
    public var metricsExposition: (@Sendable () -> String)?

    public init(postgresURL: String, amqpURL: String) {
        self.postgresURL = postgresURL
        self.amqpURL = amqpURL
    }
}

/// Which channels a worker process serves.
public enum ChannelSelection: Sendable, Hashable {
    /// These, as named on the command line.
    case named([String])
    /// Every configured channel, including channels a reload adds.
    case all

    func channels(in registry: ChannelRegistry) -> [String] {
        switch self {
        case .named(let names): names
        case .all: registry.names
        }
    }
}

/// What every channel worker of a process shares.
struct WorkerShared: Sendable {
    let store: NotificationStore
    let publisher: BrokerPublisher
    let claimer: GroupCommitter<ClaimRequest, ClaimResult?>
    let recorder: GroupCommitter<Settlement, Void>
    let relay: OutboxRelay?
    let attempter: DeliveryAttempter
    let workerName: String
    let hostDeferral: Duration
    let hostWait: Duration
    let unrecorded = UnrecordedSettlements()
    var reporting = AttemptReporting()
}

public struct WorkerBuildError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Builds a worker process: one consumer per served channel, sharing a PostgreSQL pool, a
/// publisher (retries, fallbacks, dead letters), the libcurl runtime and the outcome committer.
/// Services are in start order; shutdown runs in reverse, so consumers stop before what they use.
public func buildWorker(
    channels selection: ChannelSelection, config: ConfigStore, loader: ConfigLoader? = nil,
    configuration: WorkerConfiguration, logger: Logger
) throws -> [any Service] {
    let registry = config.snapshot.registry
    let unknown = selection.channels(in: registry).filter { registry[$0] == nil }
    guard unknown.isEmpty else {
        throw WorkerBuildError(description: "unknown channel(s) \(unknown.joined(separator: ", ")); configured: \(registry.names.joined(separator: ", "))")
    }
    let postgres = PostgresClient(
        configuration: try .herald(url: configuration.postgresURL, connections: configuration.postgresConnections, plans: .generic),
        backgroundLogger: logger)
    let store = NotificationStore(client: postgres, logger: logger)
    let endpoints = try AMQPEndpoint.list(urls: configuration.amqpURL)
    let queueType = configuration.queueType
    // The publisher declares every channel's queues: fallbacks publish to channels this process doesn't consume.
    let publisher = BrokerPublisher(
        endpoints: endpoints, topology: DeliveryTopology.topology(for: registry, queueType: queueType), logger: logger)
    var runtimeConfiguration = CurlRuntime.Configuration()
    runtimeConfiguration.maxConcurrentTransfers = max(64, registry.channels.values.map(\.concurrency).reduce(0, +))
    runtimeConfiguration.defaultCAFile = configuration.defaultCAFile
    let runtime = CurlRuntime(configuration: runtimeConfiguration, logger: logger)
    // One flush at a time for outcomes and claims: while it runs the next batch gathers, so batches
    // grow with the database's latency (group commit) and a statement carries more rows. Two at once
    // halved the batches and cost the worker ~12 % and PostgreSQL ~15 % more CPU per delivery
    // (bench/results/README.md). A flush that hangs is bounded by its deadline.
    let recorder = GroupCommitter<Settlement, Void>(
        maxBatchSize: configuration.recordBatchSize, maxConcurrentFlushes: 1, flushDeadline: .seconds(15), logger: logger,
        isolate: StoreFailure.isCausedByData, describe: StoreFailure.describe
    ) { batch in
        try await store.settle(batch)
        return Array(repeating: (), count: batch.count)
    }
    let workerName = configuration.workerName
    let claimer = GroupCommitter<ClaimRequest, ClaimResult?>(
        maxBatchSize: configuration.recordBatchSize, maxConcurrentFlushes: 1, flushDeadline: .seconds(8), logger: logger,
        isolate: StoreFailure.isCausedByData, describe: StoreFailure.describe
    ) { batch in try await store.claim(batch, worker: workerName) }
    let relay = configuration.runsRelay
        ? OutboxRelay(outbox: OutboxStore(client: postgres, logger: logger), publisher: publisher, configuration: configuration.relay, logger: logger)
        : nil
    // Breakers are this replica's own; PostgreSQL only hears about their transitions (visibility).
    // The circuits' replica is this run of the process: two workers given the same name (or a restart
    // under it) never overwrite or, when one stops, delete the other's rows.
    let replica = "\(workerName)/\(UUID().uuidString.prefix(8).lowercased())"
    let circuitPublisher = CircuitPublisher(store: CircuitStore(client: postgres, logger: logger), replica: replica, logger: logger)
    let circuits = ProviderCircuits(replica: replica, publisher: circuitPublisher, logger: logger)
    let shared = WorkerShared(
        store: store, publisher: publisher, claimer: claimer, recorder: recorder, relay: relay,
        attempter: DeliveryAttempter(
            runtime: runtime, secrets: configuration.secrets,
            restrictToPublicAddresses: !configuration.allowPrivateTargets, receiptLinks: configuration.receiptLinks,
            circuits: circuits, logger: logger),
        workerName: workerName, hostDeferral: configuration.hostDeferral, hostWait: configuration.hostWait,
        reporting: AttemptReporting(successLevel: configuration.successLogLevel))
    let supervisor = WorkerSupervisor(
        selection: selection, config: config, endpoints: endpoints, queueType: queueType, shared: shared, logger: logger)
    var services: [any Service] = [postgres, publisher, runtime, recorder, claimer, circuitPublisher] + (relay.map { [$0] } ?? []) + [supervisor]
    if let port = configuration.managementPort {
        services.append(managementApplication(
            host: configuration.managementHost, port: port, exposition: configuration.metricsExposition, postgres: postgres,
            publisher: publisher, logger: logger))
    }
    if let loader {
        services.append(ConfigReloader(
            loader: loader, store: config, logger: logger,
            prepare: { snapshot in try await publisher.declare(DeliveryTopology.topology(for: snapshot.registry, queueType: queueType)) },
            listener: { snapshot in supervisor.configurationChanged(snapshot) }))
    }
    return services
}

/// Runs one consumer and one `ChannelWorker` per served channel, and starts new ones when a reload
/// adds channels (with `--all`).
final class WorkerSupervisor: Service, Sendable {
    let selection: ChannelSelection
    let config: ConfigStore
    let endpoints: [AMQPEndpoint]
    let queueType: DeliveryTopology.QueueType
    let shared: WorkerShared
    let logger: Logger
    private let updates: AsyncStream<ConfigSnapshot>
    private let updatesContinuation: AsyncStream<ConfigSnapshot>.Continuation

    init(
        selection: ChannelSelection, config: ConfigStore, endpoints: [AMQPEndpoint], queueType: DeliveryTopology.QueueType,
        shared: WorkerShared, logger: Logger
    ) {
        self.selection = selection
        self.config = config
        self.endpoints = endpoints
        self.queueType = queueType
        self.shared = shared
        self.logger = logger
        (updates, updatesContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(4))
    }

    func configurationChanged(_ snapshot: ConfigSnapshot) {
        updatesContinuation.yield(snapshot)
    }

    func run() async throws {
        var running = Set<String>()
        await withDiscardingTaskGroup { group in
            func start(_ snapshot: ConfigSnapshot) {
                for name in selection.channels(in: snapshot.registry) where !running.contains(name) {
                    guard let channel = snapshot.registry[name] else { continue }
                    running.insert(name)
                    let topology = DeliveryTopology.topology(for: channel, queueType: queueType)
                    // Prefetch twice the slots: a slot finds its next message waiting, and no more sits unacked.
                    let consumer = BrokerConsumer(
                        endpoints: endpoints, queue: DeliveryTopology.workQueue(name),
                        prefetch: UInt16(clamping: channel.concurrency * 2), topology: topology, logger: logger)
                    let worker = ChannelWorker(channelName: name, config: config, consumer: consumer, shared: shared, logger: logger)
                    group.addTask {
                        do { try await consumer.run() } catch { self.logger.error("consumer failed", metadata: ["error": "\(error)"]) }
                    }
                    group.addTask {
                        do { try await worker.run() } catch { self.logger.error("worker failed", metadata: ["error": "\(error)"]) }
                    }
                }
            }
            start(config.snapshot)
            for await snapshot in updates.cancelOnGracefulShutdown() {
                start(snapshot)
            }
        }
    }
}
