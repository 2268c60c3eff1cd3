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
            writeObject(members.keys.sorted().map { ($0, members[$0]!) }, into: &out) { member, out in write(member, into: &out) }
        }
    }

    /// `[e1,e2,…]`, each element written by `element` (for trees that are not `JSONValue`s yet).
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
        out += JSONEscaping.escape(string)
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
            default:
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
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
