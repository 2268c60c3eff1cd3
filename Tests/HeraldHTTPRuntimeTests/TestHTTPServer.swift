import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Counters shared between the server's handlers and the tests.
final class ServerStats: Sendable {
    private struct Counters {
        var connections = 0
        var requests = 0
        var inProgress = 0
        var maxInProgress = 0
    }

    private let counters = Mutex(Counters())

    var connections: Int { self.counters.withLock { $0.connections } }
    /// Complete requests received, any route.
    var requests: Int { self.counters.withLock { $0.requests } }
    /// Highest number of `/slow` requests in progress at once.
    var maxInProgress: Int { self.counters.withLock { $0.maxInProgress } }
    /// `/slow` requests in progress now.
    var inProgress: Int { self.counters.withLock { $0.inProgress } }

    func connectionOpened() { self.counters.withLock { $0.connections += 1 } }

    func requestReceived() { self.counters.withLock { $0.requests += 1 } }

    func slowRequestStarted() {
        self.counters.withLock {
            $0.inProgress += 1
            $0.maxInProgress = max($0.maxInProgress, $0.inProgress)
        }
    }

    func slowRequestEnded() { self.counters.withLock { $0.inProgress -= 1 } }
}

/// A small HTTP/1.1 server on 127.0.0.1 with test routes:
/// - `/echo`: 200, body echoed, `X-Echo-Method`, and every request header as `X-Echo-<name>`
/// - `/status/<code>`: that status
/// - `/slow?ms=<n>`: answers after n milliseconds (tracked for concurrency)
/// - `/bytes?n=<n>`: n bytes of "a"
/// - `/redirect`: 302 to /echo
/// - `/headers`: duplicate and mixed-case response headers
/// - `/close`: closes the connection without answering
final class TestHTTPServer: Sendable {
    let port: Int
    let stats: ServerStats
    private let channel: any Channel

    private init(channel: any Channel, stats: ServerStats) {
        self.channel = channel
        self.stats = stats
        self.port = channel.localAddress?.port ?? 0
    }

    static func start() async throws -> TestHTTPServer {
        let stats = ServerStats()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                stats.connectionOpened()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(TestHTTPHandler(stats: stats))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TestHTTPServer(channel: channel, stats: stats)
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(self.port)\(path)" }

    func stop() async throws {
        try await self.channel.close()
    }
}

private final class TestHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let stats: ServerStats
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(stats: ServerStats) { self.stats = stats }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
        case .body(var buffer):
            self.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.route(context: context, head: head, body: self.body)
        }
    }

    private func route(context: ChannelHandlerContext, head: HTTPRequestHead, body: [UInt8]) {
        let (path, query) = Self.split(head.uri)
        self.stats.requestReceived()
        switch path {
        case "/echo":
            var headers = HTTPHeaders()
            headers.add(name: "X-Echo-Method", value: "\(head.method.rawValue)")
            for (name, value) in head.headers {
                headers.add(name: "X-Echo-\(name)", value: value)
            }
            self.respond(context: context, status: .ok, headers: headers, body: body)
        case "/slow":
            let ms = Int64(query["ms"] ?? "") ?? 1000
            self.stats.slowRequestStarted()
            let stats = self.stats
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(ms)) {
                stats.slowRequestEnded()
                self.respond(context: context, status: .ok, headers: [:], body: Array("slow".utf8))
            }
        case "/bytes":
            let n = Int(query["n"] ?? "") ?? 0
            self.respond(context: context, status: .ok, headers: [:], body: [UInt8](repeating: UInt8(ascii: "a"), count: n))
        case "/redirect":
            self.respond(context: context, status: .found, headers: ["Location": "/echo"], body: Array("moved".utf8))
        case "/headers":
            var headers = HTTPHeaders()
            headers.add(name: "Set-Cookie", value: "a=1")
            headers.add(name: "Set-Cookie", value: "b=2")
            headers.add(name: "X-MiXeD-Case", value: "  padded value  ")
            self.respond(context: context, status: .ok, headers: headers, body: [])
        case "/close":
            context.close(promise: nil)
        default:
            if path.hasPrefix("/status/"), let code = Int(path.dropFirst("/status/".count)) {
                self.respond(
                    context: context,
                    status: HTTPResponseStatus(statusCode: code),
                    headers: [:],
                    body: Array("status \(code)".utf8)
                )
            } else {
                self.respond(context: context, status: .notFound, headers: [:], body: Array("not found".utf8))
            }
        }
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) {
        guard context.channel.isActive else { return }
        var headers = headers
        headers.replaceOrAdd(name: "Content-Length", value: "\(body.count)")
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !body.isEmpty {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    private static func split(_ uri: String) -> (String, [String: String]) {
        guard let question = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return (String(uri[..<question]), query)
    }
}
