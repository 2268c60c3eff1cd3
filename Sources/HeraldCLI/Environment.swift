import Foundation
import HeraldConfig
import HeraldCore
import HeraldProviders
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
    var amqpURL: String { values["HERALD_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/" }
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

    /// Receipt callback URLs and their tokens: `HERALD_PUBLIC_URL` (the gateway as providers reach it)
    /// and the secret `HERALD_RECEIPT_SECRET` (env, `_FILE` or the secrets folder), the same for the
    /// gateway and every worker. Both unset: providers are asked for no receipts. One without the
    /// other, or invalid: the process refuses to start.
    func receiptLinks(secrets: SecretResolver) throws -> ReceiptLinks? {
        let url = values["HERALD_PUBLIC_URL"].flatMap { $0.isEmpty ? nil : $0 }
        let secret = secrets.value("HERALD_RECEIPT_SECRET").flatMap { $0.isEmpty ? nil : $0 }
        switch (url, secret) {
        case (nil, nil): return nil
        case (let url?, let secret?): return try ReceiptLinks(publicURL: url, secret: secret)
        case (nil, _): throw ReceiptLinkError(description: "HERALD_RECEIPT_SECRET is set but HERALD_PUBLIC_URL is not")
        case (_, nil): throw ReceiptLinkError(description: "HERALD_PUBLIC_URL is set but HERALD_RECEIPT_SECRET is not")
        }
    }

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

struct ConfigurationRefused: Error, CustomStringConvertible {
    var directory: String
    var errors: ConfigErrors
    var description: String {
        "the configuration in \(directory) has \(errors.errors.count) error(s):\n\(errors.description)"
    }
}
