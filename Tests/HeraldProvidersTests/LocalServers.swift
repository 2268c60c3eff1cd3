import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request as the local server received it.
struct ReceivedRequest: Sendable {
    var method: String
    var target: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

struct CannedResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []

    static func json(_ status: Int, _ text: String, headers: [(name: String, value: String)] = []) -> CannedResponse {
        CannedResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(text.utf8))
    }
}

/// A listening TCP socket on 127.0.0.1 with one thread that serves one connection at a time
/// (blocking POSIX calls: these servers only ever see a handful of connections from one test).
final class LoopbackListener: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Serves connections on a thread until `stop()`.
    func serve(_ connection: @escaping @Sendable (Int32) -> Void) {
        let fd = self.fd
        let thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    break
                }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                connection(client)
                close(client)
            }
            close(fd)
        }
        thread.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Reads more bytes; empty at end of stream or on error.
    static func receive(_ fd: Int32) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return count > 0 ? Array(buffer[..<count]) : []
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Int? {
        guard haystack.count >= needle.count + start else { return nil }
        for index in start...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}

/// A small HTTP/1.1 server: every request is recorded and answered by `handler`, then the connection closes.
final class LocalHTTPServer: Sendable {
    private let listener: LoopbackListener
    private let received = Mutex<[ReceivedRequest]>([])

    var port: Int { listener.port }
    var requests: [ReceivedRequest] { received.withLock { $0 } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    init(handler: @escaping @Sendable (ReceivedRequest) -> CannedResponse) throws {
        listener = try LoopbackListener()
        listener.serve { [self] client in
            guard let request = Self.readRequest(client) else { return }
            self.received.withLock { $0.append(request) }
            let response = handler(request)
            var head = "HTTP/1.1 \(response.status) Status\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n"
            for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
            LoopbackListener.send(client, Array((head + "\r\n").utf8) + response.body)
        }
    }

    func stop() { listener.stop() }

    private static func readRequest(_ client: Int32) -> ReceivedRequest? {
        var buffer: [UInt8] = []
        var headerEnd: Int?
        while headerEnd == nil {
            let more = LoopbackListener.receive(client)
            if more.isEmpty { return nil }
            buffer += more
            headerEnd = LoopbackListener.find(Array("\r\n\r\n".utf8), in: buffer)
        }
        let head = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
        var body = Array(buffer[(headerEnd! + 4)...])
        while body.count < length {
            let more = LoopbackListener.receive(client)
            if more.isEmpty { break }
            body += more
        }
        return ReceivedRequest(method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, body: body)
    }
}

/// One message as the local SMTP server received it.
struct ReceivedMail: Sendable {
    var from: String
    var recipients: [String]
    var data: [UInt8]
    var text: String { String(decoding: data, as: UTF8.self) }
}

/// A minimal SMTP server (no TLS, no AUTH): RCPT TO addresses starting with `reject` get 550,
/// with `later` 451; accepted messages are recorded (dot-stuffing undone).
final class LocalSMTPServer: Sendable {
    private let listener: LoopbackListener
    private let inbox = Mutex<[ReceivedMail]>([])

    var url: String { "smtp://127.0.0.1:\(listener.port)" }
    var messages: [ReceivedMail] { inbox.withLock { $0 } }

    init() throws {
        listener = try LoopbackListener()
        listener.serve { [self] client in
            Self.session(client) { mail in self.inbox.withLock { $0.append(mail) } }
        }
    }

    func stop() { listener.stop() }

    private static func session(_ client: Int32, deliver: (ReceivedMail) -> Void) {
        func reply(_ lines: String...) { LoopbackListener.send(client, Array(lines.map { $0 + "\r\n" }.joined().utf8)) }
        var buffer: [UInt8] = []
        var from = ""
        var recipients: [String] = []
        func nextLine() -> String? {
            while true {
                if let end = LoopbackListener.find(Array("\r\n".utf8), in: buffer) {
                    let line = String(decoding: buffer[..<end], as: UTF8.self)
                    buffer.removeFirst(end + 2)
                    return line
                }
                let more = LoopbackListener.receive(client)
                if more.isEmpty { return nil }
                buffer += more
            }
        }
        func angle(_ line: String) -> String {
            guard let open = line.firstIndex(of: "<"), let close = line.lastIndex(of: ">"), open < close else { return "" }
            return String(line[line.index(after: open)..<close])
        }
        reply("220 herald-providers-test ESMTP")
        while let line = nextLine() {
            let upper = line.uppercased()
            if upper.hasPrefix("EHLO") {
                reply("250-herald-providers-test", "250 8BITMIME")
            } else if upper.hasPrefix("HELO") {
                reply("250 herald-providers-test")
            } else if upper.hasPrefix("MAIL FROM:") {
                from = angle(line)
                recipients = []
                reply("250 2.1.0 ok")
            } else if upper.hasPrefix("RCPT TO:") {
                let recipient = angle(line)
                if recipient.hasPrefix("reject") {
                    reply("550 5.1.1 no such user")
                } else if recipient.hasPrefix("later") {
                    reply("451 4.3.0 try again later")
                } else {
                    recipients.append(recipient)
                    reply("250 2.1.5 ok")
                }
            } else if upper == "DATA" {
                reply("354 end with <CRLF>.<CRLF>")
                var lines: [String] = []
                while let dataLine = nextLine(), dataLine != "." {
                    lines.append(dataLine.hasPrefix("..") ? String(dataLine.dropFirst()) : dataLine)
                }
                deliver(ReceivedMail(from: from, recipients: recipients, data: Array((lines.joined(separator: "\r\n") + "\r\n").utf8)))
                reply("250 2.0.0 queued")
            } else if upper == "RSET" || upper == "NOOP" {
                reply("250 ok")
            } else if upper == "QUIT" {
                reply("221 bye")
                return
            } else {
                reply("502 5.5.2 unknown command")
            }
        }
    }
}
