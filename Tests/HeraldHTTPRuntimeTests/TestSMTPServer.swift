import NIOCore
import NIOPosix
import Synchronization

/// One message as the fake server received it.
struct ReceivedMail: Sendable, Equatable {
    var from: String
    var recipients: [String]
    var data: [UInt8]
}

final class SMTPInbox: Sendable {
    private let mails = Mutex<[ReceivedMail]>([])
    var messages: [ReceivedMail] { self.mails.withLock { $0 } }
    func deliver(_ mail: ReceivedMail) { self.mails.withLock { $0.append(mail) } }
}

/// A minimal SMTP server on 127.0.0.1 for the runtime's SMTP path. It offers
/// AUTH PLAIN/LOGIN (accepting only `user`/`secret`), never STARTTLS, rejects
/// recipients starting with "reject" with 550, and records accepted messages.
final class TestSMTPServer: Sendable {
    let port: Int
    let inbox: SMTPInbox
    private let channel: any Channel

    private init(channel: any Channel, inbox: SMTPInbox) {
        self.channel = channel
        self.inbox = inbox
        self.port = channel.localAddress?.port ?? 0
    }

    static func start() async throws -> TestSMTPServer {
        let inbox = SMTPInbox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SMTPHandler(inbox: inbox))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TestSMTPServer(channel: channel, inbox: inbox)
    }

    var url: String { "smtp://127.0.0.1:\(self.port)" }

    func stop() async throws { try await self.channel.close() }
}

private final class SMTPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let inbox: SMTPInbox
    private var buffer: [UInt8] = []
    private var inData = false
    private var awaitingAuthLogin: [String]? = nil
    private var awaitingAuthPlain = false
    private var from = ""
    private var recipients: [String] = []

    init(inbox: SMTPInbox) { self.inbox = inbox }

    func channelActive(context: ChannelHandlerContext) {
        self.send(context, "220 herald-test ESMTP ready")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.buffer += bytes.readBytes(length: bytes.readableBytes) ?? []
        self.process(context)
    }

    private func process(_ context: ChannelHandlerContext) {
        while true {
            if self.inData {
                // The message ends with CRLF "." CRLF; DATA's own CRLF counts as the first one.
                let terminator: [UInt8] = Array("\r\n.\r\n".utf8)
                let framed = Array("\r\n".utf8) + self.buffer
                guard let end = Self.find(terminator, in: framed) else { return }
                let raw = Array(framed[2..<(end + 2)])
                self.buffer = Array(framed[(end + terminator.count)...])
                self.inData = false
                self.inbox.deliver(ReceivedMail(from: self.from, recipients: self.recipients, data: Self.unstuff(raw)))
                self.from = ""
                self.recipients = []
                self.send(context, "250 2.0.0 queued")
                continue
            }
            guard let end = Self.find(Array("\r\n".utf8), in: self.buffer) else { return }
            let line = String(decoding: self.buffer[..<end], as: UTF8.self)
            self.buffer.removeFirst(end + 2)
            self.command(context, line)
        }
    }

    private func command(_ context: ChannelHandlerContext, _ line: String) {
        if var pending = self.awaitingAuthLogin {
            pending.append(String(line))
            if pending.count == 2 {
                self.awaitingAuthLogin = nil
                let ok = Self.base64(pending[0]) == "user" && Self.base64(pending[1]) == "secret"
                self.send(context, ok ? "235 2.7.0 authenticated" : "535 5.7.8 bad credentials")
            } else {
                self.awaitingAuthLogin = pending
                self.send(context, "334 UGFzc3dvcmQ6")
            }
            return
        }
        if self.awaitingAuthPlain {
            self.awaitingAuthPlain = false
            self.send(context, Self.plainCredentialsValid(line) ? "235 2.7.0 authenticated" : "535 5.7.8 bad credentials")
            return
        }
        let upper = line.uppercased()
        if upper.hasPrefix("EHLO") {
            self.send(context, "250-herald-test", "250-AUTH PLAIN LOGIN", "250 8BITMIME")
        } else if upper.hasPrefix("HELO") {
            self.send(context, "250 herald-test")
        } else if upper == "AUTH PLAIN" {
            self.awaitingAuthPlain = true
            self.send(context, "334 ")
        } else if upper.hasPrefix("AUTH PLAIN ") {
            let ok = Self.plainCredentialsValid(String(line.dropFirst("AUTH PLAIN ".count)))
            self.send(context, ok ? "235 2.7.0 authenticated" : "535 5.7.8 bad credentials")
        } else if upper == "AUTH LOGIN" {
            self.awaitingAuthLogin = []
            self.send(context, "334 VXNlcm5hbWU6")
        } else if upper.hasPrefix("MAIL FROM:") {
            self.from = Self.angle(line)
            self.send(context, "250 2.1.0 ok")
        } else if upper.hasPrefix("RCPT TO:") {
            let recipient = Self.angle(line)
            if recipient.hasPrefix("reject") {
                self.send(context, "550 5.1.1 no such user")
            } else {
                self.recipients.append(recipient)
                self.send(context, "250 2.1.5 ok")
            }
        } else if upper == "DATA" {
            self.inData = true
            self.send(context, "354 end with <CRLF>.<CRLF>")
        } else if upper == "RSET" || upper == "NOOP" {
            self.send(context, "250 ok")
        } else if upper == "QUIT" {
            self.send(context, "221 bye")
            context.close(promise: nil)
        } else {
            self.send(context, "502 5.5.2 unknown command")
        }
    }

    private func send(_ context: ChannelHandlerContext, _ lines: String...) {
        let text = lines.map { $0 + "\r\n" }.joined()
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
    }

    private static func plainCredentialsValid(_ encoded: String) -> Bool {
        let decoded = Self.base64(encoded) ?? ""
        let parts = decoded.split(separator: "\u{0}", omittingEmptySubsequences: false)
        return parts.count == 3 && parts[1] == "user" && parts[2] == "secret"
    }

    private static func angle(_ line: String) -> String {
        guard let open = line.firstIndex(of: "<"), let close = line.lastIndex(of: ">"), open < close else { return "" }
        return String(line[line.index(after: open)..<close])
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    /// Undoes SMTP dot-stuffing ("..x" at a line start → ".x").
    private static func unstuff(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var atLineStart = true
        var index = 0
        while index < data.count {
            let byte = data[index]
            if atLineStart, byte == UInt8(ascii: "."), index + 1 < data.count, data[index + 1] == UInt8(ascii: ".") {
                index += 1
            }
            out.append(data[index])
            atLineStart = data[index] == UInt8(ascii: "\n")
            index += 1
        }
        return out
    }

    private static func base64(_ text: String) -> String? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var lookup = [UInt8: UInt32]()
        for (index, char) in alphabet.enumerated() { lookup[char] = UInt32(index) }
        var bytes: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        for char in text.utf8 where char != UInt8(ascii: "=") {
            guard let value = lookup[char] else { return nil }
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
