import Foundation
public import Prometheus

/// What `GET /metrics` answers in every Herald process: the swift-metrics series from the Prometheus
/// registry with their `# HELP` text (from `MetricCatalogue`, the one place a series is described),
/// the configuration in force (`herald_config_info`) and the process's CPU, memory and descriptors.
public struct MetricsExposition: Sendable {
    let registry: PrometheusCollectorRegistry
    let configVersion: (@Sendable () -> String)?
    let role: String

    /// - Parameter configVersion: the version of the configuration in force, read at every scrape.
    public init(registry: PrometheusCollectorRegistry, role: String, configVersion: (@Sendable () -> String)?) {
        self.registry = registry
        self.role = role
        self.configVersion = configVersion
    }

    public func text() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        var output = Self.describe(String(decoding: buffer, as: UTF8.self))
        if let configVersion {
            output += Self.family("herald_config_info", "gauge", [(#"{version="\#(Self.escape(configVersion()))",role="\#(Self.escape(role))"}"#, 1)])
        }
        output += ProcessMetrics.read().exposition()
        return output
    }

    /// Adds a `# HELP` line before each `# TYPE` line the registry wrote.
    static func describe(_ exposition: String) -> String {
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).split(separator: " ").first.map(String.init) ?? ""
                lines.append(Substring("# HELP \(name) \(MetricCatalogue.help(for: name))"))
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    static func family(_ name: String, _ type: String, _ samples: [(labels: String, value: Double)]) -> String {
        var text = "# HELP \(name) \(MetricCatalogue.help(for: name))\n# TYPE \(name) \(type)\n"
        for sample in samples {
            let value = sample.value == sample.value.rounded() && abs(sample.value) < 1e15 ? String(Int64(sample.value)) : "\(sample.value)"
            text += "\(name)\(sample.labels) \(value)\n"
        }
        return text
    }

    /// A label value in the exposition format: backslash, quote and newline escaped.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// Every series Herald exposes, with its help text. A series missing here is exposed as
/// "(undocumented)", which the observability test refuses.
public enum MetricCatalogue {
    public static func help(for name: String) -> String { entries[name] ?? "(undocumented)" }

    public static let entries: [String: String] = [
        "herald_http_requests_total": "HTTP requests the gateway answered, by method, route template and status code.",
        "herald_http_request_duration_seconds": "Time the gateway took to answer a request, by route template.",
        "herald_notifications_accepted_total": "Notifications the gateway accepted and stored.",
        "herald_notifications_rejected_total": "Notification requests the gateway refused as invalid.",
        "herald_deliveries_accepted_total": "Deliveries created by accepted notifications, by channel.",
        "herald_accept_duration_seconds": "Time from a send request's arrival to its notification being stored.",
        "herald_attempts_total": "Delivery attempts recorded, by channel, provider and outcome.",
        "herald_provider_call_duration_seconds": "Time a provider took to answer an attempt, by channel and provider.",
        "herald_attempts_in_flight": "Attempts a worker is making now, by channel.",
        "herald_retries_scheduled_total": "Deliveries that failed transiently and were scheduled for another attempt, by channel.",
        "herald_dead_letters_total": "Deliveries that failed for good (dead letters), by channel.",
        "herald_provider_circuit_state": "State of this replica's circuit breaker for a provider (0 closed, 1 half-open, 2 open), by channel and provider.",
        "herald_provider_circuit_transitions_total": "Circuit breaker transitions on this replica, by channel, provider and the state entered (open, half_open, closed).",
        "herald_rate_limit_waits_total": "Attempts that waited for the channel's rate limit (or a provider's throttle), by channel.",
        "herald_receipts_total": "Delivery receipts providers called back with, by channel, provider and result (applied, recorded, duplicate, refused, unknown_delivery).",
        "herald_messages_skipped_total": "Queue messages acknowledged without sending (already finished, cancelled or unknown).",
        "herald_messages_deferred_total": "Queue messages sent back to the outbox because their host was at its in-flight bound.",
        "herald_poison_messages_total": "Queue messages that could not be decoded and were moved to poison_messages.",
        "herald_outbox_published_total": "Outbox rows the relay published to RabbitMQ.",
        "herald_retention_partitions_dropped_total": "Day partitions (notifications with their deliveries, attempts and receipts) dropped by retention.",
        "herald_retention_partitions_held": "Expired days the last retention pass kept: open deliveries in them, or the tables were busy.",
        "herald_retention_failures_total": "Retention and partition maintenance passes that failed.",
        "herald_outbox_direct_published_total": "Accepted deliveries the gateway published to RabbitMQ right after their commit.",
        "herald_outbox_direct_left_to_relay_total":
            "Accepted deliveries the gateway could not publish itself (broker unreachable, queue full): the relay publishes them after the grace period.",
        "herald_outbox_publish_failures_total": "Outbox relay rounds that failed.",
        "herald_outbox_publish_lag_seconds": "Time from an outbox row coming due to its publication.",
        "herald_outbox_backlog_rows": "Outbox rows due and not yet published.",
        "herald_outbox_oldest_due_age_seconds": "Age of the oldest due outbox row (0 when none is due).",
        "herald_queue_messages_ready": "Messages waiting in the channel's RabbitMQ work queue, as the broker last reported, by channel.",
        "herald_queue_consumers": "Consumers of the channel's RabbitMQ work queue, as the broker last reported, by channel.",
        "herald_config_info": "The configuration version in force (always 1), by version and role.",
        "herald_config_reloads_total": "Configuration reloads that succeeded.",
        "herald_config_reload_failures_total": "Configuration reloads refused because the directory was invalid.",
        "process_cpu_seconds_total": "User and system CPU time the process has used.",
        "process_resident_memory_bytes": "Resident memory of the process.",
        "process_virtual_memory_bytes": "Virtual memory of the process.",
        "process_open_fds": "Open file descriptors of the process.",
        "process_max_fds": "Most file descriptors the process may open.",
        "process_start_time_seconds": "When the process started, in seconds since 1970.",
    ]
}

/// The standard process series, read from /proc (Linux).
struct ProcessMetrics {
    var cpuSeconds: Double = 0
    var residentBytes: Double = 0
    var virtualBytes: Double = 0
    var openFDs: Double = 0
    var maxFDs: Double = 0
    var startTime: Double = 0

    static func read() -> ProcessMetrics {
        var metrics = ProcessMetrics()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            // Fields after the command name: state is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ number: Int) -> Double { fields.count > number - 3 ? Double(fields[number - 3]) ?? 0 : 0 }
            metrics.cpuSeconds = (field(14) + field(15)) / ticks
            metrics.virtualBytes = field(23)
            metrics.residentBytes = field(24) * page
            if let boot = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?
                .split(separator: "\n").first(where: { $0.hasPrefix("btime ") })?.split(separator: " ").last.flatMap({ Double($0) })
            {
                metrics.startTime = boot + field(22) / ticks
            }
        }
        metrics.openFDs = Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 0)
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { metrics.maxFDs = Double(limit.rlim_cur) }
        return metrics
    }

    func exposition() -> String {
        MetricsExposition.family("process_cpu_seconds_total", "counter", [("", cpuSeconds)])
            + MetricsExposition.family("process_resident_memory_bytes", "gauge", [("", residentBytes)])
            + MetricsExposition.family("process_virtual_memory_bytes", "gauge", [("", virtualBytes)])
            + MetricsExposition.family("process_open_fds", "gauge", [("", openFDs)])
            + MetricsExposition.family("process_max_fds", "gauge", [("", maxFDs)])
            + MetricsExposition.family("process_start_time_seconds", "gauge", [("", startTime)])
    }
}
