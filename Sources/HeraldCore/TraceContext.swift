import Foundation

/// A W3C Trace Context `traceparent` (version 00): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
/// The gateway continues a valid one it receives (same trace id, a span of its own) or starts a new
/// trace; the value travels with the delivery's stored job into the worker's log lines and the
/// provider request, so one request can be followed across processes.
public struct TraceContext: Sendable, Hashable, CustomStringConvertible {
    public var traceID: String
    public var spanID: String
    public var flags: String

    /// Reads a `traceparent` header; nil when it is not a valid version-00 value (all-zero ids are invalid).
    public init?(traceparent: String) {
        // On the bytes: this runs for every request and every message (Foundation's trimming and
        // Character counting were 5 % of a worker's CPU).
        var bytes = Array(traceparent.utf8)[...]
        while let first = bytes.first, first == 0x20 || first == 0x09 { bytes = bytes.dropFirst() }
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
        let start = bytes.startIndex
        // vv-<32>-<16>-<2>: 55 bytes; version 00 has exactly that, a later version may add "-…".
        guard bytes.count >= 55, bytes[start + 2] == UInt8(ascii: "-"), bytes[start + 35] == UInt8(ascii: "-"),
            bytes[start + 52] == UInt8(ascii: "-")
        else { return nil }
        let version = bytes[start..<start + 2], trace = bytes[start + 3..<start + 35]
        let span = bytes[start + 36..<start + 52], flags = bytes[start + 53..<start + 55]
        guard Self.isHex(version), Self.isHex(trace), Self.isHex(span), Self.isHex(flags) else { return nil }
        let isVersion00 = version.elementsEqual("00".utf8)
        if version.elementsEqual("ff".utf8) || (isVersion00 ? bytes.count != 55 : bytes.count > 55 && bytes[start + 55] != UInt8(ascii: "-")) {
            return nil
        }
        guard trace.contains(where: { $0 != UInt8(ascii: "0") }), span.contains(where: { $0 != UInt8(ascii: "0") }) else { return nil }
        traceID = String(decoding: trace, as: UTF8.self)
        spanID = String(decoding: span, as: UTF8.self)
        self.flags = String(decoding: flags, as: UTF8.self)
    }

    public init(traceID: String, spanID: String, flags: String = "01") {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// A new trace (sampled).
    public static func random() -> TraceContext {
        TraceContext(traceID: randomHex(bytes: 16), spanID: randomHex(bytes: 8))
    }

    /// The same trace with a new span of this process's, whose parent is `self`.
    public func child() -> TraceContext {
        TraceContext(traceID: traceID, spanID: Self.randomHex(bytes: 8), flags: flags)
    }

    public var traceparent: String { "00-\(traceID)-\(spanID)-\(flags)" }
    public var description: String { traceparent }

    static func isHex(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var random: [UInt8] = []
        random.reserveCapacity(bytes)
        repeat {
            random.removeAll(keepingCapacity: true)
            // Eight bytes per draw: a draw per byte was a system call per byte.
            while random.count < bytes {
                var word = generator.next()
                for _ in 0..<min(8, bytes - random.count) {
                    random.append(UInt8(truncatingIfNeeded: word))
                    word >>= 8
                }
            }
        } while random.allSatisfy { $0 == 0 }
        return Hex.encode(random)
    }
}

extension DeliveryJob {
    /// The `traceparent` of a stored job (its JSON text), read without decoding the job: the relay
    /// puts it in the message's header for every row it publishes, and a full decode per row would
    /// cost more than the rest of the publish. Only a top-level member counts — a `traceparent`
    /// key inside the request's `data` or `metadata` is the client's, not the trace. Nil when there
    /// is none or it is not a valid `traceparent`.
    public static func encodedTraceparent(_ payload: String) -> String? {
        var payload = payload
        let value = payload.withUTF8 { TopLevelJSONMember.string(named: Array("traceparent".utf8), in: $0) }
        return value.flatMap(TraceContext.init(traceparent:))?.traceparent
    }
}

/// Finds one top-level string member of a JSON object text by scanning it once (no tree is built).
/// Strings are skipped with their escapes, nesting is counted, so a key of the same name at a
/// deeper level, or inside a string, is never taken for it. A value with escapes is not returned.
enum TopLevelJSONMember {
    static func string(named key: [UInt8], in text: UnsafeBufferPointer<UInt8>) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        let count = text.count
        var index = 0
        var depth = 0
        // The last `{`, `,` or `:` seen at depth 1: a string after `{` or `,` is a key.
        var lastStructural: UInt8 = 0

        /// Reads the string starting at the quote at `start`; its contents' range and whether it had escapes.
        func readString(at start: Int) -> (range: Range<Int>, escaped: Bool)? {
            var end = start + 1
            var escaped = false
            while end < count && text[end] != quote {
                if text[end] == backslash {
                    escaped = true
                    end += 1
                }
                end += 1
            }
            return end < count ? (start + 1..<end, escaped) : nil
        }
        func skipSpaces() {
            while index < count, [0x20, 0x09, 0x0A, 0x0D].contains(text[index]) { index += 1 }
        }

        while index < count {
            let byte = text[index]
            switch byte {
            case quote:
                guard let (range, escaped) = readString(at: index) else { return nil }
                index = range.upperBound + 1
                guard depth == 1, lastStructural == UInt8(ascii: "{") || lastStructural == UInt8(ascii: ",") else { continue }
                let isWanted = !escaped && range.count == key.count && zip(text[range], key).allSatisfy { $0 == $1 }
                skipSpaces()
                guard index < count, text[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                lastStructural = UInt8(ascii: ":")
                guard isWanted else { continue }
                skipSpaces()
                guard index < count, text[index] == quote, let (value, valueEscaped) = readString(at: index), !valueEscaped else {
                    return nil
                }
                return String(decoding: text[value], as: UTF8.self)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth == 1 { lastStructural = byte }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","), UInt8(ascii: ":"):
                if depth == 1 { lastStructural = byte }
            default:
                break
            }
            index += 1
        }
        return nil
    }
}
