import Foundation
import HeraldConfig
import HeraldCore
import HeraldGateway
import HeraldMessaging
import HeraldObservability
import HeraldProviders
import HeraldStore
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
    /// A worker's management port (`/metrics`, `/healthz`, `/readyz`); unset: a free port, logged.
    var managementPort: Int { values["HERALD_MANAGEMENT_PORT"].flatMap(Int.init) ?? 0 }
    var managementHost: String { values["HERALD_MANAGEMENT_HOST"] ?? httpHost }
    /// `HERALD_QUEUE_SAMPLE_INTERVAL`: seconds between reads of the channel queues' depth from the
    /// broker (default 15; 0 turns them off).
    func queueSampleInterval() throws -> Duration? {
        guard let text = values["HERALD_QUEUE_SAMPLE_INTERVAL"], !text.isEmpty else { return .seconds(15) }
        guard let seconds = Double(text), seconds >= 0, seconds <= 86_400 else {
            throw InvalidSetting(name: "HERALD_QUEUE_SAMPLE_INTERVAL", value: text, expected: "seconds from 0 (off) to 86400")
        }
        return seconds == 0 ? nil : .milliseconds(Int64(seconds * 1000))
    }
    /// `HERALD_RETENTION_DAYS`: how many full UTC days of notifications, deliveries, attempts and
    /// receipts to keep (today's aside); older days are dropped whole. Unset or empty: keep everything.
    func retentionDays() throws -> Int? {
        guard let text = values["HERALD_RETENTION_DAYS"], !text.isEmpty else { return nil }
        let allowed = RetentionPolicy.allowedDays
        guard let days = Int(text), allowed.contains(days) else {
            throw InvalidSetting(
                name: "HERALD_RETENTION_DAYS", value: text,
                expected: "whole days from \(allowed.lowerBound) to \(allowed.upperBound), or unset to keep everything")
        }
        return days
    }
    /// The level of a successful attempt's log line (`info` unless set; failures are warning/error).
    var attemptLogLevel: Logger.Level { values["HERALD_ATTEMPT_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info }
    /// Requests a second per API key that has no rate of its own.
    var apiRateLimit: Int { values["HERALD_API_RATE_LIMIT"].flatMap(Int.init) ?? 1000 }
    /// `HERALD_ALERT_CHANNEL` + `HERALD_ALERT_TO` (a JSON object): where Alertmanager's alerts go.
    func alertRouting() throws -> AlertRouting? {
        guard let channel = values["HERALD_ALERT_CHANNEL"], !channel.isEmpty else { return nil }
        let text = values["HERALD_ALERT_TO"] ?? ""
        guard case .object(let to)? = try? JSONParser.parse(Array(text.utf8)) else {
            throw InvalidSetting(
                name: "HERALD_ALERT_TO", value: text, expected: #"a JSON object with the alert channel's recipient, e.g. {"email": "ops@example.com"}"#)
        }
        return AlertRouting(channel: channel, to: to)
    }
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
            var handler: any LogHandler = json ? JSONLogHandler(label: label, service: "herald-\(role)") : StreamLogHandler.standardError(label: label)
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
