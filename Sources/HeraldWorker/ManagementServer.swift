import HeraldBroker
import HeraldCore
import HeraldFilter
import HeraldStore
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// A worker's management port: `/metrics` (Prometheus), `/healthz` (the process answers) and
/// `/readyz` (PostgreSQL answers and the broker connection is up). Bound to `host:port`; port 0
/// picks a free one (logged), so several workers on one host never collide.
func managementApplication(
    host: String, port: Int, exposition: (@Sendable () -> String)?, postgres: PostgresClient, publisher: BrokerPublisher,
    logger: Logger
) -> some Service {
    let router = Router()
    router.get("/metrics") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(string: exposition?() ?? "")))
    }
    router.get("/healthz") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
    }
    router.get("/readyz") { _, _ in
        var problems: [String] = []
        do {
            try await withDeadline(.seconds(2), "PostgreSQL's answer to the readiness check") {
                _ = try await postgres.query("SELECT 1", logger: logger).collect()
            }
        } catch {
            problems.append("postgresql: \(StoreFailure.describe(error))")
        }
        if !publisher.isConnected { problems.append("rabbitmq: not connected") }
        let ready = problems.isEmpty
        let body = JSONWriter.string(
            ready ? ["status": "ready"] : ["status": "unavailable", "problems": .array(problems.map { .string($0) })])
        return Response(
            status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(host, port: port), serverName: "Herald worker"),
        onServerRunning: { channel in
            logger.info("management server listening", metadata: [
                "url.full": "http://\(host):\(channel.localAddress?.port ?? port)/metrics",
            ])
        },
        logger: logger)
}
