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
        let parts = traceparent.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].count == 2, parts[0] != "ff", Self.isHex(parts[0]) else { return nil }
        // Version 00 has exactly four parts; a later version may add more (read its first four).
        if parts[0] == "00" && parts.count != 4 { return nil }
        let trace = String(parts[1]), span = String(parts[2]), flags = String(parts[3])
        guard trace.count == 32, span.count == 16, flags.count == 2, Self.isHex(Substring(trace)), Self.isHex(Substring(span)),
            Self.isHex(Substring(flags)), trace != String(repeating: "0", count: 32), span != String(repeating: "0", count: 16)
        else { return nil }
        traceID = trace
        spanID = span
        self.flags = flags
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

    static func isHex(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        repeat {
            text = ""
            for _ in 0..<bytes {
                let byte = UInt8.random(in: 0...255, using: &generator)
                text += String(byte >> 4, radix: 16) + String(byte & 0x0F, radix: 16)
            }
        } while text.allSatisfy { $0 == "0" }
        return text
    }
}
