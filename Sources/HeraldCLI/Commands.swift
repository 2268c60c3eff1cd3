import ArgumentParser
import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviders
import HeraldGateway
import HeraldObservability
import HeraldStore
import HeraldWorker
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import UnixSignals

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Run the REST gateway and the outbox relay.")

    func run() async throws {
        // A SIGHUP that arrives before the reloader traps it must not kill the process (the default action).
        signal(SIGHUP, SIG_IGN)
        let environment = HeraldEnvironment()
        let (logger, metrics) = environment.bootstrap(role: "gateway")
        var configuration = GatewayConfiguration(postgresURL: environment.postgresURL, amqpURL: environment.amqpURL)
        configuration.queueType = try environment.queueType()
        configuration.host = environment.httpHost
        configuration.port = environment.httpPort
        let (loader, snapshot) = try environment.loadConfiguration()
        let config = ConfigStore(snapshot)
        let exposition = MetricsExposition(registry: metrics, role: "gateway", configVersion: { config.snapshot.version })
        configuration.metricsExposition = { exposition.text() }
        configuration.metricsPort = environment.metricsPort
        configuration.metricsHost = environment.metricsHost
        configuration.defaultKeyRateLimit = environment.apiRateLimit
        configuration.allowPrivateTargets = environment.allowPrivateTargets
        configuration.secrets = SecretResolver(secretsDirectory: environment.secretsDirectory)
        configuration.receiptLinks = try environment.receiptLinks(secrets: configuration.secrets)
        configuration.alertRouting = try environment.alertRouting()
        configuration.queueSampleInterval = try environment.queueSampleInterval()
        configuration.retentionDays = try environment.retentionDays()
        let (application, _) = try buildGateway(configuration: configuration, config: config, loader: loader, logger: logger)
        logger.info("gateway starting", metadata: [
            "listen": "\(configuration.host):\(configuration.port)", "config.version": "\(snapshot.version)",
            "postgres": "\(PostgresClient.Configuration.redacted(environment.postgresURL))",
        ])
        try await ServiceGroup(configuration: .herald(services: [application], logger: logger)).run()
    }
}

extension ServiceGroupConfiguration {
    /// How every Herald process runs its services: SIGTERM or SIGINT starts a graceful shutdown
    /// (stop taking work, finish what is in flight, flush the committers) bounded to 20 s; then the
    /// services are cancelled, and a service that ignores cancellation for 10 s more ends the process
    /// (ServiceLifecycle escalates to a crash), so a stop always stops.
    static func herald(services: [any Service], logger: Logger) -> ServiceGroupConfiguration {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(20)
        configuration.maximumCancellationDuration = .seconds(10)
        return configuration
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Consume one channel's queue and deliver through its providers.")

    @Option(help: "A channel to work on (repeatable).")
    var channel: [String] = []

    @Flag(help: "Work on every configured channel, and on channels a reload adds.")
    var all = false

    func validate() throws {
        if channel.isEmpty == !all { throw ValidationError("give --channel NAME (one or more) or --all") }
    }

    func run() async throws {
        // A SIGHUP that arrives before the reloader traps it must not kill the process (the default action).
        signal(SIGHUP, SIG_IGN)
        let environment = HeraldEnvironment()
        let (logger, metrics) = environment.bootstrap(role: "worker")
        let (loader, snapshot) = try environment.loadConfiguration()
        let config = ConfigStore(snapshot)
        var configuration = WorkerConfiguration(postgresURL: environment.postgresURL, amqpURL: environment.amqpURL)
        let exposition = MetricsExposition(registry: metrics, role: "worker", configVersion: { config.snapshot.version })
        configuration.metricsExposition = { exposition.text() }
        configuration.managementPort = environment.managementPort
        configuration.managementHost = environment.managementHost
        configuration.successLogLevel = environment.attemptLogLevel
        configuration.queueType = try environment.queueType()
        configuration.allowPrivateTargets = environment.allowPrivateTargets
        configuration.secrets = SecretResolver(secretsDirectory: environment.secretsDirectory)
        configuration.receiptLinks = try environment.receiptLinks(secrets: configuration.secrets)
        let services = try buildWorker(
            channels: all ? .all : .named(channel), config: config, loader: loader,
            configuration: configuration, logger: logger)
        logger.info("worker starting", metadata: [
            "channels": "\(all ? "all" : channel.joined(separator: ","))", "config.version": "\(snapshot.version)",
        ])
        try await ServiceGroup(configuration: .herald(services: services, logger: logger)).run()
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Apply database migrations.")

    func run() async throws {
        let environment = HeraldEnvironment()
        let (logger, _) = environment.bootstrap(role: "migrate")
        let client = PostgresClient(configuration: try .init(url: environment.postgresURL), backgroundLogger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            let applied = try await Migrations.migrate(client: client, logger: logger)
            print(applied.isEmpty ? "schema is up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
            group.cancelAll()
        }
    }
}

struct ChannelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channels", abstract: "Print the configured channel names, one per line.")

    func run() async throws {
        let (_, snapshot) = try HeraldEnvironment().loadConfiguration()
        snapshot.registry.names.forEach { print($0) }
    }
}
