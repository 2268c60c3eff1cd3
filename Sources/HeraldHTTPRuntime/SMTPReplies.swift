import Foundation

/// The server replies of one SMTP transfer, parsed from the response lines libcurl hands to the
/// header callback (RFC 5321 §4.2: `CODE-text` continues a reply, `CODE text` ends it).
struct SMTPReplies: Sendable, Equatable {
    struct Reply: Sendable, Equatable {
        var code: Int
        /// The lines' text after the code and separator.
        var lines: [String]

        /// `550 5.1.1 <a@b>: Recipient address rejected: …`, lines joined with a space.
        var text: String {
            let joined = self.lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .joined(separator: " ")
            return joined.isEmpty ? String(self.code) : "\(self.code) \(joined)"
        }
    }

    var replies: [Reply]

    /// At most this many characters of a reply go into an error message.
    static let maxReplyText = 512

    init(replies: [Reply]) {
        self.replies = replies
    }

    init(_ bytes: [UInt8]) {
        var replies: [Reply] = []
        var pending: Reply?
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            guard line.count >= 3, let code = Self.code(line.prefix(3)) else { continue }
            let separator = line.count > 3 ? line[line.startIndex + 3] : UInt8(ascii: " ")
            // Printable text only: a reply goes into logs and the attempt record.
            let text = String(decoding: line.dropFirst(4), as: UTF8.self).unicodeScalars
                .filter { $0.value >= 0x20 && $0.value != 0x7F }
            let textString = String(String.UnicodeScalarView(text))
            if var current = pending, current.code == code {
                current.lines.append(textString)
                pending = current
            } else {
                if let current = pending { replies.append(current) }
                pending = Reply(code: code, lines: [textString])
            }
            if separator != UInt8(ascii: "-") {
                if let current = pending { replies.append(current) }
                pending = nil
            }
        }
        if let current = pending { replies.append(current) }
        self.replies = replies
    }

    /// The last refusal (4xx or 5xx), for error messages (cut to ``maxReplyText`` characters); empty
    /// when there is none. Not simply the last reply: libcurl ends a failed session with QUIT, and
    /// the server's `221 Bye` follows the refusal that mattered.
    var refusalText: String {
        guard let last = self.replies.last(where: { $0.code >= 400 }) else { return "" }
        let text = last.text
        return text.count > Self.maxReplyText ? String(text.prefix(Self.maxReplyText)) + "…" : text
    }

    /// The EHLO keywords of the last multi-line 250 reply (the EHLO answer; after STARTTLS the
    /// second one counts), upper case; nil when no EHLO answer is among the replies.
    var extensions: Set<String>? {
        guard let ehlo = self.replies.last(where: { $0.code == 250 && $0.lines.count > 1 }) else { return nil }
        return Set(ehlo.lines.dropFirst().compactMap { $0.split(separator: " ").first.map { $0.uppercased() } })
    }

    private static func code(_ digits: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return (200...599).contains(value) ? value : nil
    }
}
