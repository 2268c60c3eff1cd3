import Foundation
import HeraldCore
import Logging
import Metrics

/// What a recorded settlement tells operators: one log line per attempt (Elastic Common Schema
/// names, real JSON types: numbers stay numbers) and the delivery metrics. Called once the
/// settlement is stored, so a settlement kept for a retry of its recording is reported once.
///
/// Label values are bounded: channel, provider, outcome — never ids, recipients or URLs. The log
/// line carries the ids (and the trace id) but no recipient, message body or secret.
struct AttemptReporting: Sendable {
    /// The level of a successful attempt's line. Failures are `warning` (transient, ambiguous) or
    /// `error` (permanent). Default info.
    var successLevel: Logger.Level = .info

    func report(_ settlement: Settlement, logger: Logger) {
        for attempt in settlement.attempts {
            let duration = attempt.finishedAt.timeIntervalSince(attempt.startedAt)
            Self.attempts[[attempt.channel, attempt.provider, attempt.outcome.rawValue]].increment()
            Self.callDurations[[attempt.channel, attempt.provider]].recordNanoseconds(Int64(max(0, duration) * 1_000_000_000))
            logger.log(level: level(of: attempt.outcome), "\(summary(attempt))", metadata: Self.fields(attempt, duration: duration))
        }
        guard let status = settlement.status, let channel = settlement.attempts.last?.channel else { return }
        switch status {
        case .retrying: Self.retries[channel].increment()
        case .failed: Self.deadLetters[channel].increment()
        default: break
        }
    }

    static let attempts = HandleCache<[String], Counter> {
        Counter(label: "herald_attempts_total", dimensions: [("channel", $0[0]), ("provider", $0[1]), ("outcome", $0[2])])
    }
    static let callDurations = HandleCache<[String], Timer> {
        Timer(label: "herald_provider_call_duration_seconds", dimensions: [("channel", $0[0]), ("provider", $0[1])])
    }
    static let retries = HandleCache<String, Counter> { Counter(label: "herald_retries_scheduled_total", dimensions: [("channel", $0)]) }
    static let deadLetters = HandleCache<String, Counter> { Counter(label: "herald_dead_letters_total", dimensions: [("channel", $0)]) }

    func level(of outcome: AttemptOutcome) -> Logger.Level {
        switch outcome {
        case .success: successLevel
        // The channel slows down and the attempt is made again: expected under load, not a failure.
        case .throttled: .info
        case .transientFailure, .ambiguous: .warning
        case .permanentFailure: .error
        }
    }

    func summary(_ attempt: AttemptRecord) -> String {
        switch attempt.outcome {
        case .success: "delivery attempt succeeded"
        case .transientFailure: "delivery attempt failed; delivery is now \(attempt.resultingStatus.rawValue)"
        case .ambiguous: "delivery attempt's outcome is unknown; delivery is now \(attempt.resultingStatus.rawValue)"
        case .throttled: "the provider asked to slow down; the attempt is made again, not counted"
        case .permanentFailure: "delivery attempt failed for good; delivery is now \(attempt.resultingStatus.rawValue)"
        }
    }

    /// The ECS fields of an attempt's line (the logger adds @timestamp, log.level, message, service.name).
    static func fields(_ attempt: AttemptRecord, duration: TimeInterval) -> Logger.Metadata {
        var fields: Logger.Metadata = [
            "event.action": "delivery-attempt",
            "event.outcome": .string(attempt.outcome == .success ? "success" : attempt.outcome == .ambiguous ? "unknown" : "failure"),
            "event.duration": .stringConvertible(Int64(max(0, duration) * 1_000_000_000)),
            "herald.notification_id": .string(attempt.notificationID.lowercasedString),
            "herald.delivery_id": .string(attempt.deliveryID.lowercasedString),
            "herald.channel": .string(attempt.channel),
            "herald.provider": .string(attempt.provider),
            "herald.attempt": .stringConvertible(attempt.number),
            "herald.tenant": .string(attempt.tenant),
            "herald.outcome": .string(attempt.outcome.rawValue),
            "herald.status": .string(attempt.resultingStatus.rawValue),
        ]
        if let status = attempt.httpStatus { fields["http.response.status_code"] = .stringConvertible(status) }
        if let error = attempt.error { fields["error.message"] = .string(error) }
        if let id = attempt.providerMessageID { fields["herald.provider_message_id"] = .string(id) }
        return fields
    }
}
