import Foundation
import HeraldCore
import Testing

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(
        name: "t", maxAttempts: 4, initialDelay: .seconds(1), multiplier: 3, maxDelay: .seconds(5), retryAmbiguous: false)

    @Test func delaysGrowGeometricallyUpToTheCap() {
        #expect(policy.delay(afterAttempt: 1) == .seconds(1))
        #expect(policy.delay(afterAttempt: 2) == .seconds(3))
        #expect(policy.delay(afterAttempt: 3) == .seconds(5))
    }

    @Test func decisions() {
        #expect(policy.decide(outcome: .success, attempt: 1) == .finish(.sent))
        #expect(policy.decide(outcome: .permanentFailure, attempt: 1) == .finish(.failed))
        #expect(policy.decide(outcome: .transientFailure, attempt: 1) == .retry(after: .seconds(1)))
        #expect(policy.decide(outcome: .transientFailure, attempt: 4) == .finish(.failed))
        #expect(policy.decide(outcome: .ambiguous, attempt: 1) == .finish(.failed))
        var lenient = policy
        lenient.retryAmbiguous = true
        #expect(lenient.decide(outcome: .ambiguous, attempt: 2) == .retry(after: .seconds(3)))
    }

    @Test func terminalStatuses() {
        #expect(DeliveryStatus.terminal == [.sent, .delivered, .undelivered, .failed, .cancelled, .expired])
        #expect(DeliveryStatus.claimable.allSatisfy { !$0.isTerminal })
        #expect(DeliveryStatus.cancellable.allSatisfy { !$0.isTerminal } && !DeliveryStatus.cancellable.contains(.sending))
    }
}

@Suite struct ValueTests {
    @Test func jsonPaths() throws {
        let document = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"to":{"email":"a@b"},"items":[{"n":1},{"n":2.5}]}"#.utf8))
        #expect(document.value(atPath: "to.email") == "a@b")
        #expect(document.value(atPath: "items.1.n") == .double(2.5))
        #expect(document.value(atPath: "items.0.n") == .integer(1))
        #expect(document.value(atPath: "items.7") == nil)
        #expect(document.value(atPath: "to.email.x") == nil)
    }

    @Test func jobsRoundTrip() throws {
        let job = DeliveryJob(
            deliveryID: .timeOrdered(), notificationID: .timeOrdered(), channel: "webhook", attempt: 2,
            to: ["webhook_url": "https://x.test/"], message: .init(text: "\"quoted\" <b>"), metadata: ["k": [1, .null]],
            acceptedAt: Date(timeIntervalSince1970: 1_700_000_000.123))
        #expect(try DeliveryJob.decode(job.encoded()) == job)
    }

    @Test func timeOrderedIDsAreVersion7AndSortByTime() {
        let earlier = UUID.timeOrdered(now: Date(timeIntervalSince1970: 1_000))
        let later = UUID.timeOrdered(now: Date(timeIntervalSince1970: 1_001))
        #expect(earlier.uuidString.dropFirst(14).first == "7")
        #expect(earlier.lowercasedString < later.lowercasedString)
        #expect(UUID.timeOrdered() != UUID.timeOrdered())
    }

    @Test func doorbellRemembersARingAndTimesOut() async {
        let bell = Doorbell()
        bell.ring()
        let clock = ContinuousClock()
        let rung = await clock.measure { await bell.wait(timeout: .seconds(30)) }
        #expect(rung < .seconds(5))
        let idle = await clock.measure { await bell.wait(timeout: .milliseconds(50)) }
        #expect(idle >= .milliseconds(50))
    }
}
