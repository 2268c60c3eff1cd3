import Foundation

/// Punycode (RFC 3492): Unicode labels as ASCII, the encoding inside IDNA's `xn--` A-labels.
public enum Punycode {
    // RFC 3492 §5: parameter values for Punycode.
    static let base = 36
    static let tMin = 1
    static let tMax = 26
    static let skew = 38
    static let damp = 700
    static let initialBias = 72
    static let initialN = 128
    static let delimiter = UInt8(ascii: "-")

    /// The Punycode of `input` (§6.3); nil on overflow (inputs far beyond any DNS label).
    /// Basic (ASCII) code points are copied as they are, case included.
    public static func encode(_ input: String) -> String? {
        let scalars = input.unicodeScalars.map { Int($0.value) }
        var output: [UInt8] = scalars.filter { $0 < 0x80 }.map { UInt8($0) }
        let basicCount = output.count
        var handled = basicCount
        if basicCount > 0 { output.append(delimiter) }
        var n = initialN
        var delta = 0
        var bias = initialBias
        while handled < scalars.count {
            // The smallest code point not handled yet.
            guard let m = scalars.filter({ $0 >= n }).min() else { return nil }
            let (step, overflow) = (m - n).multipliedReportingOverflow(by: handled + 1)
            guard !overflow, delta <= Int(Int32.max) - step else { return nil }
            delta += step
            n = m
            for c in scalars {
                if c < n {
                    delta += 1
                    guard delta <= Int(Int32.max) else { return nil }
                }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = threshold(k, bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, numPoints: handled + 1, firstTime: handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The Unicode text of Punycode `input` (§6.2); nil when it is not valid Punycode.
    public static func decode(_ input: String) -> String? {
        let bytes = Array(input.utf8)
        guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
        let delimiterIndex = bytes.lastIndex(of: delimiter)
        var output: [Int] = delimiterIndex.map { bytes[..<$0].map(Int.init) } ?? []
        var position = delimiterIndex.map { $0 + 1 } ?? 0
        var n = initialN
        var i = 0
        var bias = initialBias
        while position < bytes.count {
            let oldI = i
            var w = 1
            var k = base
            while true {
                guard position < bytes.count, let value = digitValue(bytes[position]) else { return nil }
                position += 1
                let (product, overflow) = value.multipliedReportingOverflow(by: w)
                guard !overflow, i <= Int(Int32.max) - product else { return nil }
                i += product
                let t = threshold(k, bias)
                if value < t { break }
                let (nextW, wOverflow) = w.multipliedReportingOverflow(by: base - t)
                guard !wOverflow, nextW <= Int(Int32.max) else { return nil }
                w = nextW
                k += base
            }
            bias = adapt(i - oldI, numPoints: output.count + 1, firstTime: oldI == 0)
            n += i / (output.count + 1)
            guard n <= 0x10FFFF else { return nil }
            i %= output.count + 1
            output.insert(n, at: i)
            i += 1
        }
        var text = String.UnicodeScalarView()
        for value in output {
            guard let scalar = Unicode.Scalar(UInt32(value)) else { return nil }
            text.append(scalar)
        }
        return String(text)
    }

    /// §6.1: bias adaptation after each delta.
    static func adapt(_ delta: Int, numPoints: Int, firstTime: Bool) -> Int {
        var delta = firstTime ? delta / damp : delta / 2
        delta += delta / numPoints
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + ((base - tMin + 1) * delta) / (delta + skew)
    }

    private static func threshold(_ k: Int, _ bias: Int) -> Int {
        k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
    }

    /// 0–25 → a–z, 26–35 → 0–9.
    private static func digit(_ value: Int) -> UInt8 {
        value < 26 ? UInt8(ascii: "a") + UInt8(value) : UInt8(ascii: "0") + UInt8(value - 26)
    }

    private static func digitValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): Int(byte - UInt8(ascii: "a"))
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): Int(byte - UInt8(ascii: "A"))
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0")) + 26
        default: nil
        }
    }
}

/// Internationalised domain names (IDNA, RFC 5890/5891) as DNS and SMTP need them: every label
/// with a non-ASCII character becomes its A-label `xn--<punycode>`.
///
/// The mapping is the common core of UTS #46: full stops (`。．｡`) separate labels, labels are
/// lower-cased and put in Unicode normalisation form C before encoding. Labels with characters a
/// host name can't have (spaces, controls, symbols, `@`) are refused rather than encoded.
public enum IDNA {
    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// `bücher.example` → `xn--bcher-kva.example`; an all-ASCII name is returned unchanged.
    public static func toASCII(_ domain: String) throws(Failure) -> String {
        if domain.utf8.allSatisfy({ $0 < 0x80 }) { return domain }
        let dots: Set<Character> = [".", "\u{3002}", "\u{FF0E}", "\u{FF61}"]
        let labels = domain.split(omittingEmptySubsequences: false, whereSeparator: { dots.contains($0) })
        var encoded: [String] = []
        for (index, label) in labels.enumerated() {
            // A trailing dot (the root) is allowed; an empty label anywhere else is not.
            if label.isEmpty, index == labels.count - 1, index > 0 {
                encoded.append("")
                continue
            }
            encoded.append(try labelToASCII(String(label), in: domain))
        }
        let result = encoded.joined(separator: ".")
        guard result.utf8.count <= 253 else {
            throw Failure(description: "the domain '\(domain)' is longer than 253 characters as ASCII")
        }
        return result
    }

    static func labelToASCII(_ label: String, in domain: String) throws(Failure) -> String {
        guard !label.isEmpty else { throw Failure(description: "the domain '\(domain)' has an empty label") }
        if label.utf8.allSatisfy({ $0 < 0x80 }) { return label }
        let mapped = label.lowercased().precomposedStringWithCanonicalMapping
        guard let first = mapped.unicodeScalars.first, !first.properties.isGraphemeExtend else {
            throw Failure(description: "the label '\(label)' of '\(domain)' starts with a combining mark")
        }
        guard mapped.first != "-", mapped.last != "-" else {
            throw Failure(description: "the label '\(label)' of '\(domain)' starts or ends with '-'")
        }
        for scalar in mapped.unicodeScalars where !isLabelScalar(scalar) {
            throw Failure(
                description: "the label '\(label)' of '\(domain)' has U+\(String(scalar.value, radix: 16, uppercase: true)), "
                    + "which a domain name can't have")
        }
        guard let punycode = Punycode.encode(mapped) else {
            throw Failure(description: "the label '\(label)' of '\(domain)' can't be encoded")
        }
        let aLabel = "xn--" + punycode
        guard aLabel.utf8.count <= 63 else {
            throw Failure(description: "the label '\(label)' of '\(domain)' is longer than 63 characters as ASCII (\(aLabel))")
        }
        return aLabel
    }

    /// Letters, marks and digits of any script, plus ASCII letters, digits and '-'.
    static func isLabelScalar(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            let value = scalar.value
            return (0x61...0x7A).contains(value) || (0x30...0x39).contains(value) || value == 0x2D
        }
        switch scalar.properties.generalCategory {
        case .lowercaseLetter, .uppercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber:
            return true
        default:
            // ZERO WIDTH (NON-)JOINER appear in some scripts' words (RFC 5892 CONTEXTJ).
            return scalar.value == 0x200C || scalar.value == 0x200D
        }
    }

    /// `local@domain` with the domain as A-labels; the local part unchanged.
    public static func addressToASCIIDomain(_ address: String) throws(Failure) -> String {
        guard let at = address.lastIndex(of: "@") else { return address }
        let domain = String(address[address.index(after: at)...])
        return String(address[...at]) + (try toASCII(domain))
    }
}
