import Foundation
import HeraldCore

/// Writes the RFC 5322 / MIME message of an e-mail: CRLF line ends, UTF-8 parts in quoted-printable,
/// RFC 2047 encoded words for non-ASCII header text, and header values that can't start a new header.
public struct MailMessage: Sendable, Hashable {
    /// `Name <address>` or a bare address, as the provider's `from:` renders.
    public var from: String
    public var to: String
    public var subject: String?
    public var text: String?
    public var html: String?
    public var messageID: String
    public var date: Date
    /// The multipart boundary; fixed in tests, random otherwise.
    public var boundary: String
    /// Files after the body, in a multipart/mixed message.
    public var attachments: [Attachment]

    public init(
        from: String, to: String, subject: String?, text: String?, html: String?, messageID: String, date: Date,
        boundary: String = "=_herald_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""),
        attachments: [Attachment] = []
    ) {
        self.attachments = attachments
        self.from = from
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.messageID = messageID
        self.date = date
        self.boundary = boundary
    }

    public func bytes() -> [UInt8] { Array(rendered().utf8) }

    public func rendered() -> String {
        var lines: [String] = []
        lines.append("Date: " + Self.rfc5322Date(date))
        lines.append(Self.header("From", Self.mailbox(from)))
        lines.append(Self.header("To", Self.mailbox(to)))
        lines.append(Self.header("Message-ID", "<" + Self.clean(messageID) + ">"))
        if let subject {
            lines.append(Self.header("Subject", Self.encodedText(Self.clean(subject), nameLength: "Subject: ".count)))
        }
        lines.append("MIME-Version: 1.0")
        if attachments.isEmpty {
            lines.append(contentsOf: bodyEntity())
        } else {
            // The body first, then each file: multipart/mixed with a boundary of its own.
            let mixed = boundary + "_mixed"
            lines.append("Content-Type: multipart/mixed;\r\n boundary=\"\(mixed)\"")
            lines.append("")
            lines.append("This is a multi-part message in MIME format.")
            lines.append("--" + mixed)
            lines.append(contentsOf: bodyEntity())
            for attachment in attachments {
                lines.append("--" + mixed)
                lines.append(contentsOf: Self.attachmentPart(attachment))
            }
            lines.append("--" + mixed + "--")
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// The message text as one MIME entity: its headers, a blank line, its content.
    func bodyEntity() -> [String] {
        guard let html else { return Self.part(contentType: "text/plain; charset=utf-8", text ?? "") }
        let plain = text ?? Self.plainText(fromHTML: html)
        var lines = ["Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"", "", "This is a multi-part message in MIME format."]
        lines.append("--" + boundary)
        lines.append(contentsOf: Self.part(contentType: "text/plain; charset=utf-8", plain))
        lines.append("--" + boundary)
        lines.append(contentsOf: Self.part(contentType: "text/html; charset=utf-8", html))
        lines.append("--" + boundary + "--")
        return lines
    }

    /// A file as a base64 part, its name as a quoted ASCII parameter or, when it is not ASCII, as an
    /// RFC 2231 `filename*` (with an RFC 2047 `name` for mail readers that only know that).
    static func attachmentPart(_ attachment: Attachment) -> [String] {
        let name = clean(attachment.filename)
        let isPlain = name.unicodeScalars.allSatisfy { $0.isASCII && $0 != "\"" && $0 != "\\" }
        let type = clean(attachment.contentType)
        let nameParameter = isPlain ? "name=\"\(name)\"" : "name=\"\(encodedWords(name, firstLineRoom: 60).joined(separator: " "))\""
        let filenameParameter = isPlain ? "filename=\"\(name)\"" : "filename*=utf-8''" + rfc2231(name)
        let bytes = Data(base64Encoded: attachment.content) ?? Data()
        let encoded = bytes.base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        return [
            "Content-Type: \(type);\r\n \(nameParameter)", "Content-Disposition: attachment;\r\n \(filenameParameter)",
            "Content-Transfer-Encoding: base64", "", encoded,
        ]
    }

    /// RFC 2231 / 5987 percent-encoding of UTF-8: attr-chars as they are, every other byte as %XX.
    static func rfc2231(_ text: String) -> String {
        let attrChars = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~".utf8)
        return text.utf8.map { attrChars.contains($0) ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
    }

    /// The bare address of `Name <address>` (or of a bare address), for the SMTP envelope.
    public static func address(of mailbox: String) -> String {
        let cleaned = clean(mailbox).trimmingCharacters(in: .whitespaces)
        if let open = cleaned.lastIndex(of: "<"), let close = cleaned.lastIndex(of: ">"), open < close {
            return String(cleaned[cleaned.index(after: open)..<close]).trimmingCharacters(in: .whitespaces)
        }
        return cleaned
    }

    // MARK: Headers

    /// CR, LF and other controls removed: a value can't add a header or end the header block.
    static func clean(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }

    static func header(_ name: String, _ value: String) -> String { name + ": " + value }

    /// `Name <address>` with a non-ASCII name as an encoded word; a bare address as is.
    static func mailbox(_ text: String) -> String {
        let cleaned = clean(text).trimmingCharacters(in: .whitespaces)
        guard let open = cleaned.lastIndex(of: "<"), cleaned.hasSuffix(">") else { return cleaned }
        var name = cleaned[..<open].trimmingCharacters(in: .whitespaces)
        let address = cleaned[open...]
        if name.isEmpty { return String(address) }
        if !name.unicodeScalars.allSatisfy(\.isASCII) {
            return encodedWords(name, firstLineRoom: 60).joined(separator: "\r\n ") + " " + address
        }
        if name.hasPrefix("\""), name.hasSuffix("\""), name.count >= 2 { name = String(name.dropFirst().dropLast()) }
        // Quote names with specials (RFC 5322 §3.2.3) so a comma or colon stays part of the name.
        let specials = CharacterSet(charactersIn: "()<>[]:;@\\,.\"")
        if name.unicodeScalars.contains(where: specials.contains) {
            name = "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return name + " " + address
    }

    /// Header text: ASCII that fits a line as is, anything else as RFC 2047 B encoded words, folded.
    static func encodedText(_ text: String, nameLength: Int) -> String {
        if text.unicodeScalars.allSatisfy(\.isASCII), text.utf8.count + nameLength <= 78, !text.contains("=?") {
            return text
        }
        return encodedWords(text, firstLineRoom: 75 - nameLength).joined(separator: "\r\n ")
    }

    /// `=?UTF-8?B?…?=` words of at most 75 characters, never splitting a character's UTF-8 bytes.
    static func encodedWords(_ text: String, firstLineRoom: Int) -> [String] {
        let overhead = "=?UTF-8?B??=".count
        var words: [String] = []
        var chunk: [UInt8] = []
        func maxBytes() -> Int {
            let room = (words.isEmpty ? max(firstLineRoom, 40) : 74) - overhead
            return room / 4 * 3
        }
        for character in text {
            let bytes = Array(String(character).utf8)
            if !chunk.isEmpty, chunk.count + bytes.count > maxBytes() {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words
    }

    /// `Tue, 25 Nov 2025 13:53:00 +0000`.
    static func rfc5322Date(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int?) -> String { let n = n ?? 0; return n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[(c.weekday ?? 1) - 1]), \(two(c.day)) \(months[(c.month ?? 1) - 1]) \(c.year ?? 1970) "
            + "\(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }

    // MARK: Body

    static func part(contentType: String, _ content: String) -> [String] {
        ["Content-Type: " + contentType, "Content-Transfer-Encoding: quoted-printable", "", quotedPrintable(content)]
    }

    /// RFC 2045 §6.7 quoted-printable of UTF-8 text with CRLF line breaks: lines of at most 76
    /// characters (soft breaks `=`), `=`, controls, non-ASCII and trailing white space encoded;
    /// a `.` starting a line is encoded too, so no line can be SMTP's end of data.
    static func quotedPrintable(_ text: String) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var outputLines: [String] = []
        for line in normalized.split(separator: "\n", omittingEmptySubsequences: false) {
            let bytes = Array(line.utf8)
            var tokens: [[UInt8]] = []
            for (index, byte) in bytes.enumerated() {
                let isLast = index == bytes.count - 1
                let literal =
                    (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "="))
                    || ((byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")) && !isLast)
                if literal && !(index == 0 && byte == UInt8(ascii: ".")) {
                    tokens.append([byte])
                } else {
                    tokens.append([UInt8(ascii: "="), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]])
                }
            }
            var current: [UInt8] = []
            var pieces: [String] = []
            for token in tokens {
                if current.count + token.count > 75 {
                    pieces.append(String(decoding: current + [UInt8(ascii: "=")], as: UTF8.self))
                    current = []
                }
                current += current.isEmpty && token == [UInt8(ascii: ".")] ? Array("=2E".utf8) : token
            }
            pieces.append(String(decoding: current, as: UTF8.self))
            outputLines.append(pieces.joined(separator: "\r\n"))
        }
        return outputLines.joined(separator: "\r\n")
    }

    /// A plain-text alternative for an HTML-only message: tags dropped, common entities decoded.
    static func plainText(fromHTML html: String) -> String {
        var out = ""
        var inTag = false
        for character in html {
            if character == "<" { inTag = true; continue }
            if character == ">" { inTag = false; continue }
            if !inTag { out.append(character) }
        }
        for (entity, value) in [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&nbsp;", " "), ("&amp;", "&")] {
            out = out.replacingOccurrences(of: entity, with: value)
        }
        return out
    }
}
