import Foundation
import HeraldCore
import Testing

@Suite("TraceContext")
struct TraceContextTests {
    static let example = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test func readsAValidTraceparent() throws {
        let trace = try #require(TraceContext(traceparent: Self.example))
        #expect(trace.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(trace.spanID == "b7ad6b7169203331")
        #expect(trace.flags == "01")
        #expect(trace.traceparent == Self.example)
    }

    @Test(arguments: [
        "", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01",
    ])
    func refusesInvalidValues(_ value: String) {
        #expect(TraceContext(traceparent: value) == nil)
    }

    @Test func aLaterVersionIsReadByItsFirstFourParts() {
        #expect(TraceContext(traceparent: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future")?.traceID
            == "0af7651916cd43dd8448eb211c80319c")
    }

    @Test func aChildKeepsTheTraceWithANewSpan() throws {
        let parent = try #require(TraceContext(traceparent: Self.example))
        let child = parent.child()
        #expect(child.traceID == parent.traceID)
        #expect(child.spanID != parent.spanID)
        #expect(child.flags == parent.flags)
        #expect(TraceContext(traceparent: child.traceparent) == child)
        let fresh = TraceContext.random()
        #expect(TraceContext(traceparent: fresh.traceparent) == fresh)
        #expect(fresh.traceID != TraceContext.random().traceID)
    }

    static func job(traceparent: String?, metadata: JSONValue = .object([:]), data: JSONValue = .object([:])) -> DeliveryJob {
        var job = DeliveryJob(
            deliveryID: UUID(), notificationID: UUID(), channel: "webhook", attempt: 1,
            to: ["webhook_url": .string("https://example.com/hook")], message: MessageContent(text: "hello"), data: data,
            metadata: metadata, acceptedAt: Date(), tenant: "t", locale: "en")
        job.traceparent = traceparent
        return job
    }

    /// The relay reads the trace from the stored job's text for the message header, without decoding it.
    @Test func theStoredJobsTraceIsReadFromItsText() throws {
        let text = String(decoding: try Self.job(traceparent: Self.example).encoded(), as: UTF8.self)
        #expect(DeliveryJob.encodedTraceparent(text) == Self.example)
        #expect(DeliveryJob.encodedTraceparent(String(decoding: try Self.job(traceparent: nil).encoded(), as: UTF8.self)) == nil)
    }

    /// A client's own `traceparent` inside metadata, data or a string is not the request's trace.
    @Test func onlyATopLevelTraceparentCounts() throws {
        let spoof: JSONValue = .object(["traceparent": .string(Self.example)])
        for job in [Self.job(traceparent: nil, metadata: spoof), Self.job(traceparent: nil, data: .array([spoof]))] {
            #expect(DeliveryJob.encodedTraceparent(String(decoding: try job.encoded(), as: UTF8.self)) == nil)
        }
        let other = "00-11111111111111111111111111111111-2222222222222222-01"
        let both = String(decoding: try Self.job(traceparent: other, metadata: spoof).encoded(), as: UTF8.self)
        #expect(DeliveryJob.encodedTraceparent(both) == other)
        #expect(DeliveryJob.encodedTraceparent(#"{"a": "\"traceparent\": \"\#(Self.example)\"", "b": 1}"#) == nil)
        #expect(DeliveryJob.encodedTraceparent(#"{ "x" : [1, {"y": "}"}], "traceparent" : "\#(Self.example)" }"#) == Self.example)
        #expect(DeliveryJob.encodedTraceparent(#"{"traceparent": "not-a-trace"}"#) == nil)
        #expect(DeliveryJob.encodedTraceparent(#"{"traceparent": 7}"#) == nil)
        #expect(DeliveryJob.encodedTraceparent(#"{"traceparent": "00-0af7"#) == nil)
        #expect(DeliveryJob.encodedTraceparent("") == nil)
    }
}

@Suite("Recipient masking")
struct RecipientMaskingTests {
    @Test func eachFormatShowsLittle() {
        #expect(RecipientField(name: "email", format: .email).masked("jane.doe@example.com") == "j***@example.com")
        #expect(RecipientField(name: "phone", format: .phone).masked("+15551234567") == "+1********67")
        #expect(RecipientField(name: "phone", format: .phone).masked("+12345") == "******")
        #expect(RecipientField(name: "url", format: .url).masked("https://hooks.slack.com/services/T0/B0/SECRET?x=1")
            == "https://hooks.slack.com/…")
        #expect(RecipientField(name: "url", format: .url).masked("http://user:pw@example.com:8443/path") == "http://example.com:8443/…")
        #expect(RecipientField(name: "token", format: .any).masked("f3a9c0d1e2b34a5b6c7d8e9f00112233") == "f3a9…")
        #expect(RecipientField(name: "chat", format: .any).masked("12345678") == "12…")
        #expect(RecipientField(name: "chat", format: .any).masked("abc") == "…")
    }

    @Test func aMaskedValueNeverHoldsTheIdentifyingPart() {
        let values: [(RecipientField.Format, String, identifying: String)] = [
            (.email, "someone.with.a.long.name@mail.example.org", "omeone"), (.phone, "+4915112345678", "511234"),
            (.url, "https://discord.com/api/webhooks/123456789/abcdefghijklmnop", "webhooks"),
            (.url, "https://example.com?token=abc", "token"), (.any, "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]", "PushToken"),
        ]
        for (format, value, identifying) in values {
            let masked = RecipientField(name: "r", format: format).masked(value)
            #expect(!masked.contains(identifying), "\(masked) shows \(identifying) of \(value)")
        }
    }
}
