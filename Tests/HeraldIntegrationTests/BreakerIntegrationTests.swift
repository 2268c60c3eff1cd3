import Foundation
import HeraldCore
import ServiceLifecycle
import Synchronization
import Testing

/// The circuit breaker through the real pipeline (gateway, PostgreSQL, RabbitMQ, worker) with two real
/// HTTP providers: the first goes down, its circuit opens and traffic fails over to the second without
/// calling it; it comes back, a probe after `open_for` finds it healthy and the circuit closes. The
/// state is read where an operator reads it: `GET /v1/channels`.
@Suite("Provider circuit breaker, end to end", .serialized)
struct BreakerIntegrationTests {
    static let openFor: TimeInterval = 5
    static let minRequests = 4

    static func channelFile(primary: Int, secondary: Int) -> String {
        """
        name: breaker
        category: webhook
        recipient: webhook_url
        retry: standard
        timeout: 5s
        concurrency: 1
        breaker: {failure_rate: 50%, window: 60s, min_requests: \(minRequests), open_for: \(Int(openFor))s, probes: 1}
        providers:
          - name: primary
            kind: http
            method: POST
            url: "http://127.0.0.1:\(primary)/primary"
            body:
              json: {delivery_id: "{{delivery_id}}", text: {$value: message.text}}
            response: {success: [200-299], transient: [429, 500-599]}
          - name: secondary
            kind: http
            method: POST
            url: "http://127.0.0.1:\(secondary)/secondary"
            body:
              json: {delivery_id: "{{delivery_id}}", text: {$value: message.text}}
            response: {success: [200-299], transient: [429, 500-599]}
        """
    }

    /// The circuit of `provider` as `GET /v1/channels` shows it.
    static func circuit(_ harness: PeerHarness, _ provider: String) async throws -> String? {
        let channels = try await harness.client.execute("/v1/channels").json
        let channel = channels["channels"]?.arrayValue?.first { $0["name"]?.stringValue == harness.channel("breaker") }
        let details = channel?["provider_details"]?.arrayValue?.first { $0["name"]?.stringValue == provider }
        return details?.value(atPath: "circuit.state")?.stringValue
    }

    /// Sends one notification and waits until it is `sent`; returns which provider sent it.
    static func sendOne(_ harness: PeerHarness, _ text: String) async throws -> String {
        let id = try await harness.accepted([
            "channel": .string(harness.channel("breaker")), "to": ["webhook_url": "http://127.0.0.1:9/unused"],
            "message": ["text": .string(text)],
        ])
        let sent = try await harness.wait(id: id, for: ["sent"], timeout: .seconds(30))
        let attempts = sent.value(atPath: "deliveries.0.attempts")?.arrayValue ?? []
        return attempts.last?.value(atPath: "provider")?.stringValue ?? "?"
    }

    @Test func aDownProviderOpensTrafficFailsOverAndItClosesWhenTheProviderIsBack() async throws {
        let primary = WebhookReceiver(then: 503)
        let secondary = WebhookReceiver()
        let receivers = ServiceGroup(services: [primary.application, secondary.application], logger: TestServers.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await receivers.run() }
            try await primary.waitUntilListening()
            try await secondary.waitUntilListening()
            let file = Self.channelFile(primary: primary.port!, secondary: secondary.port!)
            try await PeerHarness.with(channels: [.init(file: "breaker.yaml", contents: file)], secrets: [:]) { harness in
                #expect(try await Self.circuit(harness, "primary") == "closed")

                // Down: each notification fails on the primary and goes out through the secondary.
                for index in 0..<Self.minRequests {
                    #expect(try await Self.sendOne(harness, "down \(index)") == "secondary")
                }
                #expect(primary.requests.count == Self.minRequests)
                let openedAt = try #require(primary.requests.last?.at)
                // Open: shown by the gateway (the worker's row in provider_circuits)…
                let shown = try await eventually(timeout: .seconds(5), "GET /v1/channels to show the primary open") {
                    try await Self.circuit(harness, "primary") == "open" ? true : nil
                }
                #expect(shown)
                // …and the primary is not called while open: straight to the secondary.
                for index in 0..<2 {
                    #expect(try await Self.sendOne(harness, "open \(index)") == "secondary")
                }
                // Back: after open_for a probe goes to the primary, succeeds and closes the circuit.
                primary.fallbackStatus.withLock { $0 = 200 }
                let early = primary.requests.dropFirst(Self.minRequests).filter { $0.at < openedAt.addingTimeInterval(Self.openFor - 0.1) }
                #expect(early.isEmpty, "an open circuit must not call its provider before open_for")
                var sentBy = ""
                let deadline = openedAt.addingTimeInterval(Self.openFor * 3 + 10)
                while sentBy != "primary" && Date() < deadline {
                    sentBy = try await Self.sendOne(harness, "back")
                    if sentBy != "primary" { try await Task.sleep(for: .milliseconds(200)) }
                }
                #expect(sentBy == "primary")
                let probe = try #require(primary.requests.dropFirst(Self.minRequests).first)
                let openFor = probe.at.timeIntervalSince(openedAt)
                #expect(openFor >= Self.openFor - 0.1, "probed \(openFor) s after opening, before open_for")
                // A notification goes out every ~0.2 s plus its delivery: the probe follows open_for closely.
                #expect(openFor <= Self.openFor + 3, "probed \(openFor) s after opening")
                let closed = try await eventually(timeout: .seconds(5), "GET /v1/channels to show the primary closed") {
                    try await Self.circuit(harness, "primary") == "closed" ? true : nil
                }
                #expect(closed)
                #expect(try await Self.sendOne(harness, "closed") == "primary")
                #expect(try await Self.circuit(harness, "secondary") == "closed")
            }
            await receivers.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}
