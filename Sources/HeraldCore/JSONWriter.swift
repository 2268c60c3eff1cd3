import Foundation

/// Herald's one JSON writer: compact JSON text, strings through `JSONEscaping`, object keys of a
/// `JSONValue` sorted (deterministic bytes, which signatures over a body and SQL parameters need).
/// Numbers: integers exact; doubles in Swift's shortest round-trip spelling, whole ones below 10^15
/// without a fraction (`2.0` → `2`), NaN and infinities as null (JSON has none).
public enum JSONWriter {
    public static func string(_ value: JSONValue) -> String {
        var out = ""
        write(value, into: &out)
        return out
    }

    public static func write(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let bool): out += bool ? "true" : "false"
        case .integer(let integer): out += String(integer)
        case .double(let double): out += number(double)
        case .string(let string): writeString(string, into: &out)
        case .array(let elements):
            writeArray(elements, into: &out) { element, out in write(element, into: &out) }
        case .object(let members):
            writeObject(members.sorted { $0.key < $1.key }, into: &out) { member, out in write(member, into: &out) }
        }
    }

    /// `[e1,e2,…]`, each element written by `element` (for trees that are not `JSONValue`s yet).
    @inlinable
    public static func writeArray<Element>(
        _ elements: some Sequence<Element>, into out: inout String, element: (Element, inout String) -> Void
    ) {
        out += "["
        for (index, item) in elements.enumerated() {
            if index > 0 { out += "," }
            element(item, &out)
        }
        out += "]"
    }

    /// `{"k1":v1,…}` in the order given, each value written by `value`.
    @inlinable
    public static func writeObject<Value>(
        _ members: some Sequence<(key: String, value: Value)>, into out: inout String, value: (Value, inout String) -> Void
    ) {
        out += "{"
        for (index, member) in members.enumerated() {
            if index > 0 { out += "," }
            writeString(member.key, into: &out)
            out += ":"
            value(member.value, &out)
        }
        out += "}"
    }

    public static func writeString(_ string: String, into out: inout String) {
        out += "\""
        JSONEscaping.append(string, to: &out)
        out += "\""
    }

    static func number(_ double: Double) -> String {
        guard double.isFinite else { return "null" }
        if double == double.rounded(), abs(double) < 1e15 { return String(Int64(double)) }
        return String(double)
    }
}

public enum JSONEscaping {
    /// The inside of a JSON string literal for `text` (RFC 8259): quotes, backslashes and control
    /// characters escaped; `<`, `>` and `&` too, so the JSON is also safe inside HTML.
    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        append(text, to: &escaped)
        return escaped
    }

    /// `escape(text)` appended to `out`: the runs that need no escape (usually the whole text) are
    /// copied as they are, on the UTF-8 bytes, without a string per character or per value.
    public static func append(_ text: String, to out: inout String) {
        let utf8 = text.utf8
        var runStart = utf8.startIndex
        var index = runStart
        while index != utf8.endIndex {
            let byte = utf8[index]
            var width = 1
            let replacement: String
            switch byte {
            case 0x22: replacement = "\\\""
            case 0x5C: replacement = "\\\\"
            case 0x0A: replacement = "\\n"
            case 0x0D: replacement = "\\r"
            case 0x09: replacement = "\\t"
            case 0x3C: replacement = "\\u003c"
            case 0x3E: replacement = "\\u003e"
            case 0x26: replacement = "\\u0026"
            case 0x00..<0x20: replacement = "\\u00" + hexDigits[Int(byte >> 4)] + hexDigits[Int(byte & 0xF)]
            case 0xE2:
                // U+2028 and U+2029 (E2 80 A8 / A9): line separators to JavaScript.
                let second = utf8.index(after: index)
                guard second != utf8.endIndex, utf8[second] == 0x80 else { index = second; continue }
                let third = utf8.index(after: second)
                guard third != utf8.endIndex, utf8[third] == 0xA8 || utf8[third] == 0xA9 else { index = second; continue }
                replacement = utf8[third] == 0xA8 ? "\\u2028" : "\\u2029"
                width = 3
            default:
                index = utf8.index(after: index)
                continue
            }
            out += text[runStart..<index]
            out += replacement
            index = utf8.index(index, offsetBy: width)
            runStart = index
        }
        out += text[runStart..<utf8.endIndex]
    }

    private static let hexDigits = (0..<16).map { String($0, radix: 16) }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs: for header values, without Foundation's
    /// `CharacterSet` on every request.
    public var trimmingSpacesAndTabs: SubSequence {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}
