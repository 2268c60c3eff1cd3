import Foundation
import HeraldConfig
import HeraldCore
import Testing

/// A channel's `breaker:`: defaults, `off`, every key, and errors at their place.
@Suite struct BreakerConfigTests {
    static func channel(_ breaker: String) -> String {
        """
        name: hook
        recipient: webhook_url
        \(breaker)
        providers:
          - {name: receiver, kind: http, url: "{{to.webhook_url}}", body: {json: {text: "{{message.text}}"}}}

        """
    }

    static func load(_ breaker: String) throws -> ChannelDefinition? {
        let directory = try ConfigDirectory(["channels.d/hook.yaml": channel(breaker)])
        return try directory.load().get().registry["hook"]
    }

    static func errors(_ breaker: String) throws -> [String] {
        try ConfigDirectory(["channels.d/hook.yaml": channel(breaker)]).errors()
    }

    @Test func onByDefault() throws {
        #expect(try Self.load("")?.breaker == BreakerSettings(
            failureRate: 0.5, window: .seconds(30), buckets: 10, minRequests: 10, openFor: .seconds(30), probes: 1))
        #expect(try Self.load("breaker: on")?.breaker == .standard)
    }

    @Test func off() throws {
        #expect(try Self.load("breaker: off")?.breaker == nil)
        #expect(try Self.load("breaker: false")?.breaker == nil)
    }

    @Test func everyKey() throws {
        let settings = try Self.load("breaker: {failure_rate: 25%, window: 2s, min_requests: 3, open_for: 1s, probes: 2}")?.breaker
        #expect(settings == BreakerSettings(failureRate: 0.25, window: .seconds(2), minRequests: 3, openFor: .seconds(1), probes: 2))
        // The keys left out keep their defaults; a fraction is a rate too.
        #expect(try Self.load("breaker: {failure_rate: 0.8}")?.breaker == BreakerSettings(failureRate: 0.8))
    }

    @Test func errorsAreLocated() throws {
        #expect(try Self.errors("breaker: {failure_rate: 150%}") == [
            "channels.d/hook.yaml:3:25: failure_rate must be a percentage from 1% to 100%, such as 50%",
        ])
        #expect(try Self.errors("breaker: {window: 5}") == [
            "channels.d/hook.yaml:3:19: window must be a duration such as 250ms, 10s, 5m or 1h",
        ])
        #expect(try Self.errors("breaker: {open_for: 10ms}") == ["channels.d/hook.yaml:3:21: open_for must be at least 100ms"])
        #expect(try Self.errors("breaker: {probes: 0}") == ["channels.d/hook.yaml:3:19: probes must be between 1 and 1000, not 0"])
        #expect(try Self.errors("breaker: sometimes") == [
            "channels.d/hook.yaml:3:10: breaker must be off, on, or a mapping of failure_rate, window, min_requests, open_for, probes",
        ])
        let unknown = try Self.errors("breaker: {min_request: 3}")
        #expect(unknown.count == 1)
        #expect(unknown.first?.hasPrefix("channels.d/hook.yaml:3:11: unknown key 'min_request' in breaker (did you mean 'min_requests'?)") == true)
    }
}
