/// A strict RFC 8259 parser for request bodies: duplicate object keys are an error (a client that
/// sends `{"to": …, "to": …}` meant one of them, and which one another parser keeps differs), nesting
/// is bounded, and every error says where it is (line, column) in words a client can act on.
public enum JSONParser {
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var line: Int
        public var column: Int
        /// Where in the document, as a dotted path (for duplicate keys); empty otherwise.
        public var path: String

        public var description: String { "line \(line), column \(column): \(message)" }
    }

    public static let maximumDepth = 64

    public static func parse(_ bytes: some Collection<UInt8>) throws(Failure) -> JSONValue {
        var parser = Parser(bytes: Array(bytes))
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.failure("unexpected text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        /// Where the value being read sits: member names and array indices from the top. Kept as parts
        /// and joined only for an error, rather than a dotted string built for every member.
        var path: [PathComponent] = []

        enum PathComponent {
            case key(String)
            case index(Int)
        }

        func dottedPath(then key: String) -> String {
            (path.map { component in
                switch component {
                case .key(let key): key
                case .index(let index): String(index)
                }
            } + [key]).joined(separator: ".")
        }

        func failure(_ message: String, path: String = "") -> Failure {
            var line = 1, column = 1
            for byte in bytes[..<min(index, bytes.count)] {
                if byte == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else if byte & 0xC0 != 0x80 {
                    column += 1
                }
            }
            return Failure(message: message, line: line, column: column, path: path)
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            guard depth < JSONParser.maximumDepth else { throw failure("nested deeper than \(JSONParser.maximumDepth) levels") }
            guard let byte = peek() else { throw failure("the body ended where a value was expected") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw failure("unexpected character '\(Self.show(byte))' where a value was expected")
            }
        }

        static func show(_ byte: UInt8) -> String {
            byte >= 0x20 && byte < 0x7F ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let count = word.utf8CodeUnitCount
            let matches = bytes.count - index >= count
                && word.withUTF8Buffer { expected in expected.indices.allSatisfy { bytes[index + $0] == expected[$0] } }
            guard matches else { throw failure("unexpected text; expected '\(word)'") }
            index += count
        }

        mutating func object(depth: Int) throws(Failure) -> JSONValue {
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                index += 1
                return .object([:])
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw failure("expected a member name in double quotes") }
                let keyStart = index
                let key = try string()
                if members[key] != nil {
                    index = keyStart
                    throw failure("the member '\(key)' appears twice in one object", path: dottedPath(then: key))
                }
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw failure("expected ':' after the member name") }
                index += 1
                skipWhitespace()
                path.append(.key(key))
                members[key] = try value(depth: depth + 1)
                path.removeLast()
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return .object(members)
                default: throw failure("expected ',' or '}' in an object")
                }
            }
        }

        mutating func array(depth: Int) throws(Failure) -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return .array([])
            }
            while true {
                skipWhitespace()
                path.append(.index(elements.count))
                elements.append(try value(depth: depth + 1))
                path.removeLast()
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    return .array(elements)
                default: throw failure("expected ',' or ']' in an array")
                }
            }
        }

        mutating func hexDigit() throws(Failure) -> UInt16 {
            guard let byte = peek() else { throw failure("the body ended inside a \\u escape") }
            index += 1
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt16(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt16(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt16(byte - UInt8(ascii: "A") + 10)
            default:
                index -= 1
                throw failure("a \\u escape needs four hexadecimal digits")
            }
        }

        mutating func unicodeEscape() throws(Failure) -> UInt16 {
            var value: UInt16 = 0
            for _ in 0..<4 { value = value << 4 | (try hexDigit()) }
            return value
        }

        mutating func string() throws(Failure) -> String {
            index += 1  // opening quote
            // Most strings have no escape: one validation of their bytes makes the String.
            var end = index
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                let start = index
                index = end
                guard let text = String(validating: bytes[start..<end], as: UTF8.self) else { throw failure("the text is not valid UTF-8") }
                index = end + 1
                return text
            }
            var scalars = String.UnicodeScalarView()
            var runStart = index
            func flushRun(_ end: Int) throws(Failure) {
                guard runStart < end else { return }
                guard let text = String(validating: bytes[runStart..<end], as: UTF8.self) else {
                    throw failure("the text is not valid UTF-8")
                }
                scalars.append(contentsOf: text.unicodeScalars)
            }
            while true {
                guard let byte = peek() else { throw failure("the body ended inside a string") }
                if byte == UInt8(ascii: "\"") {
                    try flushRun(index)
                    index += 1
                    return String(scalars)
                }
                if byte < 0x20 { throw failure("a control character must be escaped in a string") }
                if byte != UInt8(ascii: "\\") {
                    index += 1
                    continue
                }
                try flushRun(index)
                index += 1
                guard let escape = peek() else { throw failure("the body ended inside an escape") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    let first = try unicodeEscape()
                    if (0xD800...0xDBFF).contains(first) {
                        guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw failure("a high surrogate \\u escape must be followed by a low one")
                        }
                        index += 2
                        let second = try unicodeEscape()
                        guard (0xDC00...0xDFFF).contains(second) else { throw failure("expected a low surrogate \\u escape") }
                        let value = 0x10000 + (UInt32(first - 0xD800) << 10) + UInt32(second - 0xDC00)
                        scalars.append(UnicodeScalar(value)!)
                    } else if (0xDC00...0xDFFF).contains(first) {
                        throw failure("a low surrogate \\u escape without a high one")
                    } else {
                        scalars.append(UnicodeScalar(first)!)
                    }
                default:
                    index -= 1
                    throw failure("unknown escape '\\\(Self.show(escape))'")
                }
                runStart = index
            }
        }

        mutating func number() throws(Failure) -> JSONValue {
            let start = index
            var isInteger = true
            if peek() == UInt8(ascii: "-") { index += 1 }
            guard let first = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                throw failure("a number needs digits")
            }
            if first == UInt8(ascii: "0") {
                index += 1
                if let next = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
                    throw failure("a number may not start with 0 followed by digits")
                }
            } else {
                while let digit = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            if peek() == UInt8(ascii: ".") {
                isInteger = false
                index += 1
                guard let digit = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else {
                    throw failure("a decimal point needs digits after it")
                }
                while let digit = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                isInteger = false
                index += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
                guard let digit = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else {
                    throw failure("an exponent needs digits")
                }
                while let digit = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            // Up to 18 digits always fit in an Int64: no text to make.
            let digits = index - start - (bytes[start] == UInt8(ascii: "-") ? 1 : 0)
            if isInteger, digits <= 18 {
                var magnitude: Int64 = 0
                for byte in bytes[(index - digits)..<index] { magnitude = magnitude * 10 + Int64(byte - UInt8(ascii: "0")) }
                return .integer(bytes[start] == UInt8(ascii: "-") ? -magnitude : magnitude)
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            if isInteger, let integer = Int64(text) { return .integer(integer) }
            guard let double = Double(text), double.isFinite else {
                index = start
                throw failure("the number \(text) is out of range")
            }
            return .double(double)
        }
    }
}
