import Foundation
import HeraldCore
import Testing

/// The byte-level escaper writes exactly what the scalar-by-scalar one (kept here as the reference)
/// wrote, and what it writes parses back to the text.
@Suite struct JSONEscapingTests {
    static func reference(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                escaped += String(format: "\\u%04x", scalar.value)
            case _ where scalar.value < 0x20:
                escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static let samples = [
        "", "plain ascii", "quote \" and \\ backslash", "a\nb\rc\td", "\u{0}\u{1}\u{1f}\u{7f}",
        "<script>alert('x')</script> & co", "line\u{2028}sep\u{2029}para", "\u{2028}", "€ – ‘’ “” … \u{2027}\u{202a}",
        "emoji 👩‍👩‍👧 é (e\u{301}) 日本語", "ends with <", "\u{e2}", String(repeating: "long text ", count: 500) + "\"",
    ]

    @Test(arguments: samples) func escapesAsTheReferenceDid(_ text: String) throws {
        #expect(JSONEscaping.escape(text) == Self.reference(text))
        var appended = "prefix:"
        JSONEscaping.append(text, to: &appended)
        #expect(appended == "prefix:" + Self.reference(text))
        let parsed = try JSONSerialization.jsonObject(with: Data(("\"" + JSONEscaping.escape(text) + "\"").utf8), options: .fragmentsAllowed)
        #expect(parsed as? String == text)
    }

    @Test func everyScalarBelowU3000EscapesAsTheReferenceDid() {
        for value in UInt32(0)..<0x3000 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let text = "a" + String(Character(scalar)) + "b"
            #expect(JSONEscaping.escape(text) == Self.reference(text), "U+\(String(value, radix: 16))")
        }
    }
}
