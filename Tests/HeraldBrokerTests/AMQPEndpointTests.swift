import Testing
@testable import HeraldBroker

@Suite("AMQPEndpoint URL parsing")
struct AMQPEndpointTests {
    @Test func fullURL() throws {
        let e = try AMQPEndpoint(url: "amqp://alice:s3cret@broker.internal:5673/prod")
        #expect(e.host == "broker.internal")
        #expect(e.port == 5673)
        #expect(e.username == "alice")
        #expect(e.password == "s3cret")
        #expect(e.virtualHost == "prod")
        #expect(e.heartbeatSeconds == 30)
    }

    @Test(arguments: ["amqp://h/", "amqp://h", "amqp://h/%2F", "amqp://h/%2f"])
    func defaultVirtualHost(url: String) throws {
        let e = try AMQPEndpoint(url: url)
        #expect(e.virtualHost == "/")
        #expect(e.host == "h")
        #expect(e.port == 5672)
        #expect(e.username == "guest")
        #expect(e.password == "guest")
    }

    @Test func percentEncodedCredentialsAndVirtualHost() throws {
        let e = try AMQPEndpoint(url: "amqp://us%40er:p%3Ass%2Fw@127.0.0.1:5672/%2Fteam%20a")
        #expect(e.username == "us@er")
        #expect(e.password == "p:ss/w")
        #expect(e.virtualHost == "/team a")
    }

    @Test func userWithoutPasswordAndEmptyHost() throws {
        let e = try AMQPEndpoint(url: "amqp://bob@")
        #expect(e.username == "bob")
        #expect(e.password == "guest")
        #expect(e.host == "localhost")
    }

    @Test func ipv6Host() throws {
        let e = try AMQPEndpoint(url: "amqp://[::1]:5679/")
        #expect(e.host == "::1")
        #expect(e.port == 5679)
        #expect(e.description == "amqp://guest@[::1]:5679/%2F")
    }

    @Test func heartbeatQuery() throws {
        #expect(try AMQPEndpoint(url: "amqp://h/?heartbeat=0").heartbeatSeconds == 0)
        #expect(try AMQPEndpoint(url: "amqp://h/v?heartbeat=5&x=1").heartbeatSeconds == 5)
    }

    @Test func descriptionHidesThePassword() throws {
        let e = try AMQPEndpoint(url: "amqp://alice:s3cret@h:1/v")
        #expect(!e.description.contains("s3cret"))
        #expect(!"\(e)".contains("s3cret"))
    }

    @Test(arguments: [
        "http://h/", "amqps://h/", "h:5672", "amqp://h:notaport/", "amqp://h:70000/",
        "amqp://[::1/", "amqp://u:%zz@h/", "amqp://h/?heartbeat=-1",
    ])
    func invalidURLs(url: String) {
        #expect {
            _ = try AMQPEndpoint(url: url)
        } throws: { error in
            (error as? BrokerError)?.code == .invalidURL && (error as? BrokerError)?.isRetriable == false
        }
    }
}
