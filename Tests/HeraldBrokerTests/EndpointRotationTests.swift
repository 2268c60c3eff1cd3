import Testing
@testable import HeraldBroker

@Suite("EndpointRotation")
struct EndpointRotationTests {
    static let nodes = [5681, 5682, 5683].map { AMQPEndpoint(host: "127.0.0.1", port: $0) }
    static let noJitter = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0)

    @Test func aLostNodeMovesToTheNextAtOnceAndWaitsOnlyAfterAFullRound() {
        var rotation = EndpointRotation(endpoints: Self.nodes, startIndex: 0, backoff: Self.noJitter)
        #expect(rotation.current.port == 5681)
        // Round 1: node 1 and 2 fail, the next node is tried without waiting; the third failure closes the round.
        #expect(rotation.failed() == .zero)
        #expect(rotation.current.port == 5682)
        #expect(rotation.failed() == .zero)
        #expect(rotation.current.port == 5683)
        #expect(rotation.failed() == .milliseconds(100))
        #expect(rotation.current.port == 5681)
        // Round 2 waits twice as long at its end.
        #expect(rotation.failed() == .zero)
        #expect(rotation.failed() == .zero)
        #expect(rotation.failed() == .milliseconds(200))
    }

    @Test func aConnectionStaysOnItsNodeAndResetsTheRound() {
        var rotation = EndpointRotation(endpoints: Self.nodes, startIndex: 1, backoff: Self.noJitter)
        #expect(rotation.failed() == .zero)
        #expect(rotation.failed() == .zero)
        #expect(rotation.current.port == 5681)
        rotation.connected()
        #expect(rotation.current.port == 5681)
        #expect(rotation.consecutiveFailures == 0)
        // The connection to node 1 is lost: node 2 next, at once, and the backoff starts from its first step.
        #expect(rotation.failed() == .zero)
        #expect(rotation.current.port == 5682)
        #expect(rotation.failed() == .zero)
        #expect(rotation.failed() == .milliseconds(100))
    }

    @Test func oneEndpointIsThePlainBackoff() {
        var rotation = EndpointRotation(endpoints: [Self.nodes[0]], backoff: Self.noJitter)
        let delays = (0..<5).map { _ in rotation.failed() }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1)])
        #expect(rotation.current.port == 5681)
        rotation.connected()
        #expect(rotation.failed() == .milliseconds(100))
    }

    @Test func startIndicesSpreadProcessesOverTheNodes() {
        // Without a start index each process picks one at random: over many, every node gets some.
        let starts = Set((0..<200).map { _ in EndpointRotation(endpoints: Self.nodes, backoff: Self.noJitter).current.port })
        #expect(starts == [5681, 5682, 5683])
        #expect(EndpointRotation(endpoints: Self.nodes, startIndex: 4, backoff: Self.noJitter).current.port == 5682)
    }
}

@Suite("AMQPEndpoint.list")
struct AMQPEndpointListTests {
    @Test func parsesCommaSeparatedNodesInOrder() throws {
        let endpoints = try AMQPEndpoint.list(
            urls: "amqp://herald:s%2Cecret@rabbit-1:5672/prod, amqp://herald:s%2Cecret@rabbit-2:5673/prod ,\namqp://rabbit-3/")
        #expect(endpoints.map(\.host) == ["rabbit-1", "rabbit-2", "rabbit-3"])
        #expect(endpoints.map(\.port) == [5672, 5673, 5672])
        #expect(endpoints[0].password == "s,ecret")
        #expect(endpoints[1].virtualHost == "prod")
        #expect(endpoints[2].username == "guest")
    }

    @Test func oneURLIsAListOfOne() throws {
        #expect(try AMQPEndpoint.list(urls: "amqp://guest:guest@127.0.0.1:5672/") == [AMQPEndpoint()])
    }

    @Test(arguments: [
        ("", "no URL given"),
        ("  ", "no URL given"),
        ("amqp://a/,", "entry 2 of 2 is empty"),
        ("amqp://a/,,amqp://b/", "entry 2 of 3 is empty"),
        ("amqp://a/,http://b/", "entry 2: invalid AMQP URL: expected the scheme amqp://"),
        ("amqp://a:5672/,amqp://u:p@a/x", "entry 2 names a:5672 again"),
        ("amqp://a:99999/", "entry 1: invalid AMQP URL: bad port '99999'"),
    ])
    func refusesWithTheEntryNamed(urls: String, reason: String) {
        #expect {
            try AMQPEndpoint.list(urls: urls)
        } throws: { error in
            guard let error = error as? BrokerError else { return false }
            return error.code == .invalidURL && error.message == "invalid AMQP URL list: \(reason)" && !error.isRetriable
        }
    }

    @Test func errorsNeverShowThePassword() {
        #expect {
            try AMQPEndpoint.list(urls: "amqp://u:topsecret@a:1/,amqp://u:topsecret@a:x/")
        } throws: { error in
            !"\(error)".contains("topsecret")
        }
    }
}
