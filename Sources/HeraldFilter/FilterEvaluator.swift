import HeraldCore

/// In-memory evaluation. Every rule here has a twin in `SQLCompiler`.
enum FilterEvaluator {
    static func matches(_ expression: FilterExpression, _ document: JSONValue) -> Bool {
        switch expression {
        case .and(let children): children.allSatisfy { matches($0, document) }
        case .or(let children): children.contains { matches($0, document) }
        case .nor(let children): !children.contains { matches($0, document) }
        case .field(let path, let condition): test(condition, document.value(at: path.components))
        }
    }

    static func test(_ condition: FieldCondition, _ value: JSONValue?) -> Bool {
        switch condition {
        case .eq(let literal): equalityMatches(value, literal)
        case .ne(let literal): !equalityMatches(value, literal)
        case .gt(let literal): anyMatch(value) { compare($0, literal).map { $0 > 0 } ?? false }
        case .gte(let literal): anyMatch(value) { compare($0, literal).map { $0 >= 0 } ?? false }
        case .lt(let literal): anyMatch(value) { compare($0, literal).map { $0 < 0 } ?? false }
        case .lte(let literal): anyMatch(value) { compare($0, literal).map { $0 <= 0 } ?? false }
        case .in(let literals): literals.contains { equalityMatches(value, $0) }
        case .nin(let literals): !literals.contains { equalityMatches(value, $0) }
        case .exists(let flag): (value != nil) == flag
        case .regex(let regex):
            anyMatch(value) { element in
                if case .string(let string) = element { regex.matches(string) } else { false }
            }
        case .not(let inner): !test(inner, value)
        case .all(let conditions): conditions.allSatisfy { test($0, value) }
        }
    }

    /// The value itself, or (for an array) any of its elements, satisfies `predicate`.
    static func anyMatch(_ value: JSONValue?, _ predicate: (JSONValue) -> Bool) -> Bool {
        guard let value else { return false }
        if predicate(value) { return true }
        if case .array(let elements) = value { return elements.contains(where: predicate) }
        return false
    }

    /// `$eq`: deep equality with the value or one of its elements; `null` also matches missing.
    static func equalityMatches(_ value: JSONValue?, _ literal: JSONValue) -> Bool {
        if value == nil, case .null = literal { return true }
        return anyMatch(value) { deepEqual($0, literal) }
    }

    /// Equality as jsonb's `=`: numbers numerically, strings and keys by Unicode scalars.
    static func deepEqual(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.integer, .integer), (.integer, .double), (.double, .integer), (.double, .double):
            return compareNumbers(lhs, rhs) == 0
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { deepEqual($0, $1) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let other = JSONValue.member(b, key), deepEqual(value, other) else { return false }
            }
            return true
        default:
            return false
        }
    }

    /// Ordering between two numbers or two strings (by Unicode scalar values, as `COLLATE "C"`
    /// on UTF-8); nil for any other pair.
    static func compare(_ lhs: JSONValue, _ rhs: JSONValue) -> Int? {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)):
            if a.utf8.elementsEqual(b.utf8) { return 0 }
            return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
        default:
            return compareNumbers(lhs, rhs)
        }
    }

    /// Exact comparison of two numbers (an Int64 against a Double without rounding either).
    static func compareNumbers(_ lhs: JSONValue, _ rhs: JSONValue) -> Int? {
        switch (lhs, rhs) {
        case (.integer(let a), .integer(let b)):
            return a < b ? -1 : a > b ? 1 : 0
        case (.double(let a), .double(let b)):
            if a.isNaN || b.isNaN { return nil }
            return a < b ? -1 : a > b ? 1 : 0
        case (.double(let a), .integer(let b)):
            return compare(double: a, integer: b)
        case (.integer(let a), .double(let b)):
            return compare(double: b, integer: a).map { -$0 }
        default:
            return nil
        }
    }

    /// A Double against an Int64. Below 2^53 the exact binary values compare (the shortest decimal
    /// of such a double never crosses an integer). From 2^53 on, a double is compared as the
    /// shortest round-trip decimal it is written as in JSON (`description`, which `JSONEncoder` and
    /// `JSONWriter` write), because that is the number PostgreSQL stores: 2^60 is stored as
    /// 1152921504606847000, not 1152921504606846976.
    static func compare(double: Double, integer: Int64) -> Int? {
        if double.isNaN { return nil }
        if double.isInfinite { return double > 0 ? 1 : -1 }
        if double.magnitude < 9_007_199_254_740_992.0 {
            let whole = double.rounded(.towardZero)
            let wholeInteger = Int64(whole)
            if wholeInteger != integer { return wholeInteger < integer ? -1 : 1 }
            let fraction = double - whole
            return fraction > 0 ? 1 : fraction < 0 ? -1 : 0
        }
        return compareDecimal(double.description, integer)
    }

    /// Compares a decimal in Swift's `Double.description` form (`-1.2345e+18`, `123.0`) with an integer.
    static func compareDecimal(_ decimal: String, _ integer: Int64) -> Int {
        var text = Substring(decimal)
        let negative = text.first == "-"
        if negative { text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        var digits = ""
        if let dot = text.firstIndex(of: ".") {
            let fraction = text[text.index(after: dot)...]
            digits = String(text[..<dot]) + fraction
            exponent -= fraction.count
        } else {
            digits = String(text)
        }
        // The integer part of the decimal, and whether a non-zero fraction was cut off.
        var hasFraction = false
        if exponent >= 0 {
            digits += String(repeating: "0", count: exponent)
        } else {
            let cut = min(-exponent, digits.count)
            hasFraction = digits.suffix(cut).contains { $0 != "0" }
            digits = String(digits.dropLast(cut))
        }
        let magnitude = String(digits.drop { $0 == "0" })
        let otherNegative = integer < 0
        let otherMagnitude = String(integer.magnitude)
        let isZero = magnitude.isEmpty && !hasFraction
        if isZero && integer == 0 { return 0 }
        if (negative && !isZero) != otherNegative {
            return otherNegative ? 1 : -1
        }
        // Same sign: compare magnitudes, then flip for negatives.
        var order: Int
        if magnitude.count != otherMagnitude.count {
            order = magnitude.count < otherMagnitude.count ? -1 : 1
        } else if magnitude != otherMagnitude {
            order = magnitude < otherMagnitude ? -1 : 1
        } else {
            order = hasFraction ? 1 : 0
        }
        if otherNegative { order = -order }
        return order
    }
}
