/// Where and how to connect to a RabbitMQ broker.
public struct AMQPEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Host name or IP address. Default `"127.0.0.1"` (or `"localhost"` from a URL with an empty host).
    public var host: String
    /// TCP port. Default `5672`.
    public var port: Int
    /// Default `"guest"`.
    public var username: String
    /// Default `"guest"`.
    public var password: String
    /// Default `"/"`.
    public var virtualHost: String
    /// AMQP heartbeat in seconds, negotiated with the broker (the lower non-zero value wins);
    /// `0` turns heartbeats off. Default `30`. The connection thread sends heartbeats and detects a
    /// silent broker (no frame for two intervals) even while idle.
    public var heartbeatSeconds: Int

    public init(
        host: String = "127.0.0.1",
        port: Int = 5672,
        username: String = "guest",
        password: String = "guest",
        virtualHost: String = "/",
        heartbeatSeconds: Int = 30
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.virtualHost = virtualHost
        self.heartbeatSeconds = heartbeatSeconds
    }

    /// Parses `amqp://user:pass@host:port/vhost[?heartbeat=N]`.
    ///
    /// - User and password are percent-decoded; defaults `guest` / `guest`.
    /// - Port defaults to `5672`; an empty host means `localhost`; IPv6 hosts go in brackets.
    /// - The virtual host is the percent-decoded path without its leading `/`; an empty path or
    ///   `/` means `/` (so `/%2F` and `` both mean `/`, `/prod` means `prod`).
    /// - `amqps://` (TLS) is not supported and throws `invalidURL`.
    public init(url: String) throws(BrokerError) {
        func invalid(_ reason: String) -> BrokerError {
            BrokerError(code: .invalidURL, message: "invalid AMQP URL: \(reason)", isRetriable: false)
        }
        let schemePrefix = "amqp://"
        guard url.lowercased().hasPrefix(schemePrefix) else {
            if url.lowercased().hasPrefix("amqps://") {
                throw invalid("amqps (TLS) is not supported")
            }
            throw invalid("expected the scheme amqp://")
        }
        var rest = Substring(url.dropFirst(schemePrefix.count))

        // Fragment and query.
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        // Authority and path.
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }

        var username = "guest"
        var password = "guest"
        var hostPort = authority
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                guard let u = Self.percentDecode(userInfo[..<colon]),
                      let p = Self.percentDecode(userInfo[userInfo.index(after: colon)...])
                else { throw invalid("bad percent-encoding in the user info") }
                username = u
                password = p
            } else {
                guard let u = Self.percentDecode(userInfo) else { throw invalid("bad percent-encoding in the user name") }
                username = u
            }
        }

        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("unterminated IPv6 address") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw invalid("unexpected characters after the IPv6 address")
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        var port = 5672
        if let portText, !portText.isEmpty {
            guard let p = Int(portText), (1...65535).contains(p) else { throw invalid("bad port '\(portText)'") }
            port = p
        }
        guard let decodedHost = Self.percentDecode(host) else { throw invalid("bad percent-encoding in the host") }

        guard let decodedPath = Self.percentDecode(path) else { throw invalid("bad percent-encoding in the virtual host") }
        let virtualHost = decodedPath.isEmpty ? "/" : decodedPath

        var heartbeat = 30
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { continue }
            if parts[0] == "heartbeat" {
                guard let h = Int(parts[1]), (0...65535).contains(h) else { throw invalid("bad heartbeat '\(parts[1])'") }
                heartbeat = h
            }
        }

        self.init(
            host: decodedHost.isEmpty ? "localhost" : decodedHost,
            port: port,
            username: username,
            password: password,
            virtualHost: virtualHost,
            heartbeatSeconds: heartbeat
        )
    }

    /// Parses the nodes of one RabbitMQ cluster: AMQP URLs separated by commas (spaces around them
    /// are ignored), each as `init(url:)` reads it, e.g.
    /// `amqp://herald:pw@rabbit-1:5672/,amqp://herald:pw@rabbit-2:5672/`. A comma inside a user name
    /// or password must be percent-encoded (`%2C`). Throws `invalidURL` naming the entry for an
    /// empty list, an empty entry, a bad URL, or a node listed twice.
    public static func list(urls: String) throws(BrokerError) -> [AMQPEndpoint] {
        func invalid(_ reason: String) -> BrokerError {
            BrokerError(code: .invalidURL, message: "invalid AMQP URL list: \(reason)", isRetriable: false)
        }
        let blank: Set<Character> = [" ", "\t", "\n", "\r"]
        let entries = urls.split(separator: ",", omittingEmptySubsequences: false).map { entry in
            entry.drop(while: blank.contains).reversed().drop(while: blank.contains).reversed()
        }.map { String($0) }
        if entries.count == 1 && entries[0].isEmpty { throw invalid("no URL given") }
        var endpoints: [AMQPEndpoint] = []
        for (position, entry) in entries.enumerated() {
            guard !entry.isEmpty else { throw invalid("entry \(position + 1) of \(entries.count) is empty") }
            let endpoint: AMQPEndpoint
            do throws(BrokerError) {
                endpoint = try AMQPEndpoint(url: entry)
            } catch {
                throw invalid("entry \(position + 1): \(error.message)")
            }
            if endpoints.contains(where: { $0.host == endpoint.host && $0.port == endpoint.port }) {
                throw invalid("entry \(position + 1) names \(endpoint.host):\(endpoint.port) again")
            }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    /// The endpoint without the password, safe to log.
    public var description: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let vhost = virtualHost == "/" ? "%2F" : virtualHost
        return "amqp://\(username)@\(hostPart):\(port)/\(vhost)"
    }

    static func percentDecode<S: StringProtocol>(_ text: S) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let hi = iterator.next().flatMap(Self.hexValue),
                      let lo = iterator.next().flatMap(Self.hexValue)
                else { return nil }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
