import Testing
@testable import HeraldBroker

@Suite("ReconnectBackoff")
struct ReconnectBackoffTests {
    @Test func growsExponentiallyUpToTheCapAndResets() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0)
        let delays = (0..<6).map { _ in backoff.nextDelay() }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        backoff.reset()
        #expect(backoff.nextDelay() == .milliseconds(100))
    }

    @Test func jitterOnlyShortensTheDelay() {
        var backoff = ReconnectBackoff(initial: .seconds(1), maximum: .seconds(1), multiplier: 2, jitter: 0.2)
        for _ in 0..<100 {
            let d = backoff.nextDelay()
            #expect(d <= .seconds(1) && d >= .milliseconds(799))
        }
    }
}
