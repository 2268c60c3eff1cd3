import Crypto
import Foundation
import HeraldCore
import HeraldStore
import Hummingbird
import Logging

/// Where alerts from Alertmanager go: a channel and its recipient (`HERALD_ALERT_CHANNEL`,
/// `HERALD_ALERT_TO` as a JSON object such as `{"email": "ops@example.com"}`).
public struct AlertRouting: Sendable, Hashable {
    public var channel: String
    public var to: [String: JSONValue]

    public init(channel: String, to: [String: JSONValue]) {
        self.channel = channel
        self.to = to
    }
}

/// Alertmanager's webhook (payload version 4) turned into one notification for the operators'
/// channel. Pure: the gateway stores what `notification` returns like any other request.
///
/// Loop guard: an alert about the operators' channel itself (its `channel` label is that channel)
/// is not sent through it — a failing ops channel would otherwise alert about itself for ever. The
/// idempotency key is the group, its status and its alerts' start times, so Alertmanager's retries
/// of one notification store it once, while a later firing of the same group is new.
public enum AlertmanagerWebhook {
    public struct Converted: Sendable, Hashable {
        /// The notification request; nil when every alert was dropped by the loop guard.
        public var request: JSONValue?
        public var idempotencyKey: String
        public var dropped: Int
    }

    public struct Invalid: Error, Sendable {
        public var errors: [FieldError]
    }

    public static func notification(from payload: JSONValue, routing: AlertRouting) throws(Invalid) -> Converted {
        guard case .object(let root) = payload else {
            throw Invalid(errors: [FieldError(field: "", message: "the body must be an Alertmanager webhook payload (a JSON object)")])
        }
        guard case .array(let alerts)? = root["alerts"] else {
            throw Invalid(errors: [FieldError(field: "alerts", message: "is required: an array of alerts")])
        }
        guard let status = root["status"]?.stringValue, ["firing", "resolved"].contains(status) else {
            throw Invalid(errors: [FieldError(field: "status", message: "must be 'firing' or 'resolved'")])
        }
        var kept: [JSONValue] = []
        var errors: [FieldError] = []
        for (index, alert) in alerts.enumerated() {
            guard case .object(let members) = alert, case .object(let labels)? = members["labels"] else {
                errors.append(FieldError(field: "alerts.\(index)", message: "must be an alert with labels"))
                continue
            }
            if labels["channel"]?.stringValue == routing.channel { continue }
            kept.append(alert)
        }
        guard errors.isEmpty else { throw Invalid(errors: errors) }
        let groupKey = root["groupKey"]?.stringValue ?? ""
        let starts = alerts.compactMap { $0["startsAt"]?.stringValue }.sorted().joined(separator: ",")
        let key = "alertmanager:" + Hex.encode(SHA256.hash(data: Data("\(groupKey)|\(status)|\(starts)".utf8)).prefix(16))
        guard !kept.isEmpty else { return Converted(request: nil, idempotencyKey: key, dropped: alerts.count) }

        let name = root["commonLabels"]?["alertname"]?.stringValue ?? kept.first?["labels"]?["alertname"]?.stringValue ?? "alert"
        let subject = "[\(status.uppercased()):\(kept.count)] \(name)"
        var lines = [subject, ""]
        for alert in kept {
            let labels = (alert["labels"]?.objectValue ?? [:]).keys.sorted()
                .map { "\($0)=\(alert["labels"]?[$0]?.stringValue ?? "")" }.joined(separator: " ")
            let summary = alert["annotations"]?["summary"]?.stringValue ?? alert["annotations"]?["description"]?.stringValue ?? ""
            lines.append("- \(alert["status"]?.stringValue ?? status): \(summary)")
            lines.append("  \(labels)")
            if let since = alert["startsAt"]?.stringValue { lines.append("  since \(since)") }
        }
        if let url = root["externalURL"]?.stringValue { lines.append(""); lines.append("Alertmanager: \(url)") }
        let request: JSONValue = .object([
            "channel": .string(routing.channel),
            "to": .object(routing.to),
            "message": ["subject": .string(subject), "text": .string(lines.joined(separator: "\n"))],
            "metadata": ["source": "alertmanager", "alertname": .string(name), "alert_status": .string(status)],
        ])
        return Converted(request: request, idempotencyKey: key, dropped: alerts.count - kept.count)
    }
}

extension NotificationAPI {
    /// `POST /v1/alerts/alertmanager`: Alertmanager's webhook receiver (authenticated with an API key
    /// through its `http_config.authorization`). 202 with the notification; 200 when the loop guard
    /// dropped every alert; 404 when no alert routing is configured.
    func alertmanagerWebhook(_ request: Request, context: Context) async throws -> Response {
        let principal = try context.require(.send)
        guard let routing = configuration.alertRouting else {
            throw ProblemDetails.notFound("no alert channel is configured (HERALD_ALERT_CHANNEL, HERALD_ALERT_TO)")
        }
        let body = try await readJSON(request)
        let converted: AlertmanagerWebhook.Converted
        do {
            converted = try AlertmanagerWebhook.notification(from: body, routing: routing)
        } catch {
            throw ProblemDetails.validation(error.errors)
        }
        guard let notification = converted.request else {
            logger.warning("alerts about the alert channel itself were not sent through it (loop guard)", metadata: [
                "herald.channel": "\(routing.channel)", "alerts.dropped": .stringConvertible(converted.dropped),
            ])
            return Self.json(["status": "dropped"])
        }
        return try await store(
            notification, idempotencyKey: converted.idempotencyKey, principal: principal, trace: context.trace, since: .now)
    }
}
