import Foundation
import HeraldConfig
import HeraldCore
import HeraldMessaging
import Logging
import Metrics
import Prometheus

/// Process settings from the environment, with the defaults the local scripts use.
struct HeraldEnvironment {
    let values: [String: String]

    init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    var postgresURL: String { values["HERALD_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:15432/herald" }
    /// One AMQP URL, or the nodes of one RabbitMQ cluster separated by commas.
    var amqpURL: String { values["HERALD_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/" }
    /// `HERALD_AMQP_QUEUE_TYPE`: `classic` (default, one node) or `quorum` (a cluster).
    func queueType() throws -> DeliveryTopology.QueueType {
        guard let setting = values["HERALD_AMQP_QUEUE_TYPE"], !setting.isEmpty else { return .classic }
        guard let type = DeliveryTopology.QueueType(setting: setting) else {
            throw InvalidSetting(
                name: "HERALD_AMQP_QUEUE_TYPE", value: setting,
                expected: DeliveryTopology.QueueType.allCases.map(\.rawValue).joined(separator: " or "))
        }
        return type
    }
    var httpHost: String { values["HERALD_HTTP_HOST"] ?? "127.0.0.1" }
    var httpPort: Int { values["HERALD_HTTP_PORT"].flatMap(Int.init) ?? 8080 }
    /// Serve `/metrics` on its own port (e.g. for a management network); unset: on the API port.
    var metricsPort: Int? { values["HERALD_METRICS_PORT"].flatMap(Int.init) }
    var metricsHost: String { values["HERALD_METRICS_HOST"] ?? httpHost }
    /// Requests a second per API key that has no rate of its own.
    var apiRateLimit: Int { values["HERALD_API_RATE_LIMIT"].flatMap(Int.init) ?? 1000 }
    var webhookSecret: String? { values["HERALD_WEBHOOK_SECRET"].flatMap { $0.isEmpty ? nil : $0 } }
    var allowPrivateTargets: Bool { ["1", "true", "yes"].contains(values["HERALD_ALLOW_PRIVATE_TARGETS"]?.lowercased() ?? "") }
    var logLevel: Logger.Level { values["HERALD_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info }
    var logFormat: String { values["HERALD_LOG_FORMAT"] ?? "json" }

    var configDirectory: String { values["HERALD_CONFIG_DIR"] ?? FileManager.default.currentDirectoryPath }
    var secretsDirectory: String? { values["HERALD_SECRETS_DIR"] }

    /// Loads the configuration directory, or stops the process listing every error in it.
    func loadConfiguration() throws -> (ConfigLoader, ConfigSnapshot) {
        let loader = ConfigLoader(directory: configDirectory)
        switch loader.load() {
        case .success(let snapshot): return (loader, snapshot)
        case .failure(let errors): throw ConfigurationRefused(directory: configDirectory, errors: errors)
        }
    }

    /// Bootstraps logging and metrics for this process, once; returns the logger and the Prometheus registry.
    func bootstrap(role: String) -> (Logger, PrometheusCollectorRegistry) {
        let level = logLevel
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: "herald.\(role)")
        logger[metadataKey: "role"] = "\(role)"
        return (logger, registry)
    }
}

extension PrometheusCollectorRegistry {
    func exposition() -> String {
        var buffer: [UInt8] = []
        emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// An environment variable with a value Herald can't use; stops the process before anything starts.
struct InvalidSetting: Error, CustomStringConvertible {
    var name: String
    var value: String
    var expected: String
    var description: String { "\(name)=\(value) is not valid: expected \(expected)" }
}

struct ConfigurationRefused: Error, CustomStringConvertible {
    var directory: String
    var errors: ConfigErrors
    var description: String {
        "the configuration in \(directory) has \(errors.errors.count) error(s):\n\(errors.description)"
    }
}
