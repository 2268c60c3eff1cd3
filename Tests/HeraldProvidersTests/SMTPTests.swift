import Foundation
import HeraldCore
import HeraldHTTPRuntime
import HeraldProviderModel
import HeraldProviders
import Testing

@Suite("SMTP")
struct SMTPTests {
    static func spec(url: String = "smtp://mail.example.com:587", from: String = "Herald <noreply@example.com>") -> ProviderSpec {
        ProviderSpec(
            name: "relay",
            transport: .smtp(
                SMTPProviderSpec(
                    url: Fixtures.t(url), startTLS: .none, username: nil, password: nil, from: Fixtures.t(from))))
    }

    /// Splits a message into its header fields (unfolded) and body.
    static func parse(_ text: String) -> (headers: [(String, String)], body: String) {
        let end = text.range(of: "\r\n\r\n")!
        var fields: [(String, String)] = []
        for line in text[..<end.lowerBound].components(separatedBy: "\r\n") {
            if line.hasPrefix(" ") || line.hasPrefix("\t") {
                fields[fields.count - 1].1 += line
            } else if let colon = line.firstIndex(of: ":") {
                fields.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        return (fields, String(text[end.upperBound...]))
    }

    static func header(_ headers: [(String, String)], _ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    /// RFC 2047 B encoded words back to text.
    static func decodeWords(_ value: String) -> String {
        let words = value.split(separator: " ").map(String.init)
        guard words.allSatisfy({ $0.hasPrefix("=?UTF-8?B?") && $0.hasSuffix("?=") }) else { return value }
        let bytes = words.flatMap { Array(Data(base64Encoded: String($0.dropFirst(10).dropLast(2))) ?? Data()) }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func decodeQuotedPrintable(_ text: String) -> String {
        var bytes: [UInt8] = []
        let input = Array(text.replacingOccurrences(of: "=\r\n", with: "").utf8)
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "="), index + 2 < input.count,
                let value = UInt8(String(decoding: input[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func expectWellFormed(_ text: String) {
        let bytes = Array(text.utf8)
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") {
            #expect(index > 0 && bytes[index - 1] == UInt8(ascii: "\r"), "bare LF at \(index)")
        }
        for line in text.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78, "line too long: \(line)")
            #expect(line != ".")
        }
    }

    @Test("multipart/alternative message: headers, RFC 2047 subject, quoted-printable UTF-8 parts, CRLF")
    func multipart() throws {
        let text = "Привет, Ада!\nLine two with = sign and trailing space \n.starts with a dot\n" + String(repeating: "long ", count: 40)
        let html = "<p>Привет, <b>Ада</b>!</p>"
        let subject = "Добро пожаловать — welcome to Herald, a subject long enough to need more than one encoded word"
        let client = try Fixtures.client(Self.spec())
        let mail = try client.buildMail(
            for: Fixtures.job(message: MessageContent(subject: subject, text: text, html: html)), recipientField: "email",
            now: Fixtures.now)
        #expect(mail.from == "noreply@example.com")
        #expect(mail.recipients == ["ada@example.com"])
        #expect(mail.url == "smtp://mail.example.com:587")
        #expect(mail.startTLS == SMTPRequest.STARTTLSPolicy.none)

        let message = String(decoding: mail.message, as: UTF8.self)
        let isASCII = message.unicodeScalars.allSatisfy { $0.isASCII }
        #expect(isASCII)
        Self.expectWellFormed(message)
        let (headers, body) = Self.parse(message)
        #expect(Self.header(headers, "Date") == "Tue, 14 Nov 2023 22:13:20 +0000")
        #expect(Self.header(headers, "Message-ID") == "<0f8fad5b-d9cb-469f-a165-70867728950e@herald>")
        #expect(Self.header(headers, "From") == "Herald <noreply@example.com>")
        #expect(Self.header(headers, "To") == "ada@example.com")
        #expect(Self.header(headers, "MIME-Version") == "1.0")
        #expect(Self.decodeWords(try #require(Self.header(headers, "Subject"))) == subject)
        let contentType = try #require(Self.header(headers, "Content-Type"))
        #expect(contentType.hasPrefix("multipart/alternative; boundary=\""))  // unfolded
        let boundary = String(contentType.split(separator: "\"")[1])
        // ("\r\n" is one Character: dropFirst()/dropLast() below remove a line break each.)

        let parts = body.components(separatedBy: "--" + boundary)
        #expect(parts.count == 4)  // preamble, text, html, "--" epilogue
        #expect(parts[3].hasPrefix("--"))
        let plain = Self.parse(String(parts[1].dropFirst()))
        #expect(Self.header(plain.headers, "Content-Type") == "text/plain; charset=utf-8")
        #expect(Self.header(plain.headers, "Content-Transfer-Encoding") == "quoted-printable")
        #expect(Self.decodeQuotedPrintable(String(plain.body.dropLast())) == text.replacingOccurrences(of: "\n", with: "\r\n"))
        let rich = Self.parse(String(parts[2].dropFirst()))
        #expect(Self.header(rich.headers, "Content-Type") == "text/html; charset=utf-8")
        #expect(Self.decodeQuotedPrintable(String(rich.body.dropLast())) == html)
    }

    @Test("text only: a single text/plain part")
    func textOnly() throws {
        let client = try Fixtures.client(Self.spec(from: "noreply@example.com"))
        let mail = try client.buildMail(
            for: Fixtures.job(message: MessageContent(subject: "Plain", text: "Just text")), now: Fixtures.now)
        let message = String(decoding: mail.message, as: UTF8.self)
        Self.expectWellFormed(message)
        let (headers, body) = Self.parse(message)
        #expect(Self.header(headers, "Subject") == "Plain")
        #expect(Self.header(headers, "Content-Type") == "text/plain; charset=utf-8")
        #expect(Self.header(headers, "From") == "noreply@example.com")
        #expect(body == "Just text\r\n")
    }

    @Test("header values can't add headers; a hostile recipient is refused")
    func headerInjection() async throws {
        let client = try Fixtures.client(Self.spec(from: "{{secrets.FROM_NAME}} <noreply@example.com>"), secrets: ["FROM_NAME": "Ops\r\nBcc: x@evil.test"])
        let mail = try client.buildMail(
            for: Fixtures.job(message: MessageContent(subject: "Hi\r\nBcc: victim@evil.test\r\n\r\nbody", text: "t")), now: Fixtures.now)
        let message = String(decoding: mail.message, as: UTF8.self)
        Self.expectWellFormed(message)
        let (headers, _) = Self.parse(message)
        #expect(!headers.contains { $0.0.lowercased() == "bcc" })
        #expect(Self.header(headers, "Subject") == "HiBcc: victim@evil.testbody")
        #expect(mail.from == "noreply@example.com")

        for hostile in ["a@b.test>\r\nRCPT TO:<c@d.test", "not-an-address", "x@y.test, z@w.test"] {
            let result = await client.attempt(Fixtures.job(to: ["email": .string(hostile)]), recipientField: "email")
            #expect(result.outcome == .permanentFailure)
            #expect(result.error == "to.email is not an e-mail address")
        }
    }

    @Test("sent through the runtime to a local SMTP server; 550 is permanent, 451 transient")
    func send() async throws {
        let server = try LocalSMTPServer()
        defer { server.stop() }
        try await Fixtures.withRuntime { runtime in
            let client = try Fixtures.client(Self.spec(url: server.url, from: "Herald <noreply@example.com>"), runtime: runtime)
            let job = Fixtures.job(message: MessageContent(subject: "Héllo", text: "Hi\n.\nstill here", html: "<p>Hi</p>"))
            let sent = await client.attempt(job, recipientField: "email")
            #expect(sent == ProviderResult(outcome: .success, providerMessageID: "0f8fad5b-d9cb-469f-a165-70867728950e@herald"))

            let rejected = await client.attempt(Fixtures.job(to: ["email": "reject@example.com"]), recipientField: "email")
            #expect(rejected.outcome == .permanentFailure)
            #expect(rejected.error?.hasPrefix("SMTP 550") == true)

            let later = await client.attempt(Fixtures.job(to: ["email": "later@example.com"]), recipientField: "email")
            #expect(later.outcome == .transientFailure)
            #expect(later.error?.hasPrefix("SMTP 451") == true)
        }
        let mail = try #require(server.messages.first)
        #expect(server.messages.count == 1)
        #expect(mail.from == "noreply@example.com")
        #expect(mail.recipients == ["ada@example.com"])
        let (headers, body) = Self.parse(mail.text)
        #expect(Self.decodeWords(try #require(Self.header(headers, "Subject"))) == "Héllo")
        #expect(Self.header(headers, "Message-ID") == "<0f8fad5b-d9cb-469f-a165-70867728950e@herald>")
        #expect(body.contains("still here"))
    }
}
