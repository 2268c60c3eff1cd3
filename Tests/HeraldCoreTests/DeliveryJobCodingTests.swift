import Foundation
import HeraldCore
import Testing

@Suite struct DeliveryJobCodingTests {
    static func job(everything: Bool) -> DeliveryJob {
        var job = DeliveryJob(
            deliveryID: UUID(), notificationID: UUID(), channel: "sms", attempt: 3,
            to: ["phone": "+15550100", "extra": .object(["n": 1])],
            message: everything
                ? MessageContent(subject: "S", text: "T \"q\" ü 😀", html: "<b>h</b>", title: "Ti", body: "B", imageURL: "https://x.test/i.png")
                : MessageContent(text: "t"),
            data: ["a": [1, 2.5, "x", .null, true]], metadata: ["order": 42],
            acceptedAt: Date(timeIntervalSince1970: 1_764_000_000.123), configVersion: "v9",
            fallbackIDs: everything ? [UUID(), UUID()] : [], expiresAt: everything ? Date(timeIntervalSince1970: 1_764_003_600.5) : nil,
            tenant: "shop", locale: everything ? "de" : nil)
        if everything { job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }
        return job
    }

    @Test(arguments: [false, true]) func aJobReadsBackAsItWasWritten(everything: Bool) throws {
        let job = Self.job(everything: everything)
        let decoded = try DeliveryJob.decode(try job.encoded())
        #expect(decoded.deliveryID == job.deliveryID && decoded.fallbackIDs == job.fallbackIDs && decoded.to == job.to)
        #expect(decoded.message == job.message && decoded.data == job.data && decoded.metadata == job.metadata)
        #expect(abs(decoded.acceptedAt.timeIntervalSince(job.acceptedAt)) < 0.000_01)
        #expect(decoded.expiresAt.map { abs($0.timeIntervalSince(job.expiresAt!)) < 0.000_01 } ?? (job.expiresAt == nil))
        #expect(decoded.tenant == job.tenant && decoded.locale == job.locale && decoded.traceparent == job.traceparent)
        #expect(decoded.attempt == 3 && decoded.channel == "sms" && decoded.configVersion == "v9")
    }

    /// Jobs stored before the writer changed were written by Foundation's Codable encoder (upper-case
    /// ids, fractional milliseconds): they still read.
    @Test(arguments: [false, true]) func aJobWrittenByTheCodableFormStillReads(everything: Bool) throws {
        let job = Self.job(everything: everything)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        let decoded = try DeliveryJob.decode(Array(try encoder.encode(job)))
        #expect(decoded.deliveryID == job.deliveryID && decoded.message == job.message && decoded.fallbackIDs == job.fallbackIDs)
        #expect(abs(decoded.acceptedAt.timeIntervalSince(job.acceptedAt)) < 0.000_01)
        #expect(decoded.traceparent == job.traceparent && decoded.locale == job.locale)
    }

    @Test(arguments: [
        (#"[1]"#, "document"), (#"{"delivery_id": "x", "notification_id": "0af76519-16cd-43dd-8448-eb211c80319c", "channel": "c", "attempt": 1, "to": {}, "message": {}, "metadata": {}, "accepted_at": 1}"#, "'delivery_id' is not a UUID"),
        (#"{"channel": "c"}"#, "'attempt' is not present"),
        (#"{"delivery_id": "0af76519-16cd-43dd-8448-eb211c80319c", "notification_id": "0af76519-16cd-43dd-8448-eb211c80319c", "channel": "c", "attempt": "1"}"#, "'attempt'"),
    ])
    func aJobThatIsNotOneNamesWhatIsWrong(text: String, names: String) {
        #expect {
            try DeliveryJob.decode(Array(text.utf8))
        } throws: { error in
            "\(error)".contains(names)
        }
    }
}
