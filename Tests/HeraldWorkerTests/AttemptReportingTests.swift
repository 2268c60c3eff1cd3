import Foundation
import HeraldCore
import Logging
import Testing

@testable import HeraldWorker

@Suite struct AttemptReportingTests {
    static func attempt(_ outcome: AttemptOutcome, status: Int?, error: String?, resulting: DeliveryStatus) -> AttemptRecord {
        let started = Date(timeIntervalSince1970: 1_764_000_000)
        return AttemptRecord(
            deliveryID: UUID(), notificationID: UUID(), number: 2, startedAt: started, finishedAt: started.addingTimeInterval(0.125),
            outcome: outcome, httpStatus: status, error: error, resultingStatus: resulting, worker: "w", provider: "twilio",
            channel: "sms", tenant: "shop")
    }

    @Test func theLineHasTheECSFieldsAsNumbersAndStrings() {
        let record = Self.attempt(.transientFailure, status: 503, error: "HTTP 503", resulting: .retrying)
        let fields = AttemptReporting.fields(record, duration: 0.125)
        #expect(fields["event.action"] == "delivery-attempt")
        #expect(fields["event.outcome"] == "failure")
        #expect(fields["herald.notification_id"] == .string(record.notificationID.lowercasedString))
        #expect(fields["herald.delivery_id"] == .string(record.deliveryID.lowercasedString))
        #expect(fields["herald.channel"] == "sms")
        #expect(fields["herald.provider"] == "twilio")
        #expect(fields["herald.tenant"] == "shop")
        #expect(fields["herald.status"] == "retrying")
        #expect(fields["error.message"] == "HTTP 503")
        // Numbers stay numbers: the JSON handler writes a stringConvertible Int as a JSON number.
        guard case .stringConvertible(let duration as Int64)? = fields["event.duration"],
            case .stringConvertible(let attempt as Int)? = fields["herald.attempt"],
            case .stringConvertible(let status as Int)? = fields["http.response.status_code"]
        else {
            Issue.record("event.duration, herald.attempt and http.response.status_code must be integers: \(fields)")
            return
        }
        #expect(duration == 125_000_000)
        #expect(attempt == 2)
        #expect(status == 503)
    }

    @Test func aSuccessHasNoErrorAndAnAmbiguousAttemptIsUnknown() {
        let sent = AttemptReporting.fields(Self.attempt(.success, status: nil, error: nil, resulting: .sent), duration: 0.01)
        #expect(sent["event.outcome"] == "success")
        #expect(sent["error.message"] == nil)
        #expect(sent["http.response.status_code"] == nil)
        let unknown = AttemptReporting.fields(Self.attempt(.ambiguous, status: nil, error: "timeout", resulting: .retrying), duration: 5)
        #expect(unknown["event.outcome"] == "unknown")
    }

    @Test func levelsFollowTheOutcome() {
        let reporting = AttemptReporting(successLevel: .debug)
        #expect(reporting.level(of: .success) == .debug)
        #expect(reporting.level(of: .transientFailure) == .warning)
        #expect(reporting.level(of: .ambiguous) == .warning)
        #expect(reporting.level(of: .permanentFailure) == .error)
        #expect(AttemptReporting().level(of: .success) == .info)
    }
}
