/// A `$regex` pattern in the subset Herald guarantees to behave identically in memory (its own
/// automaton over Unicode scalars, linear time, no backtracking) and in PostgreSQL (`~`, an
/// Advanced Regular Expression, which Herald re-emits from the parsed pattern rather than passing
/// the user's text through).
///
/// The subset (anything else is rejected when the filter is parsed):
/// - literals: any character except the metacharacters `. ^ $ | ( ) [ ] { } * + ? \`;
///   `\` followed by any ASCII punctuation or space is that character literally.
/// - `.` any character (newlines included); `^` start of the string; `$` end of the string
///   (only: no multi-line mode, `$` doesn't match before a final newline).
/// - escapes `\n \t \r \f \v`; classes `\d` = `[0-9]`, `\w` = `[A-Za-z0-9_]`,
///   `\s` = `[ \t\n\r\f\v]` (ASCII only, whatever the locale) and their negations `\D \W \S`.
/// - bracket classes `[abc]`, `[^abc]`, ranges `[a-z]` (by code point), `\d \w \s` and the escapes
///   above inside them; a `-` first or last is literal; `[`, `]` and `\` must be escaped inside.
/// - groups `( … )` and `(?: … )` (both only group; no captures are exposed), alternation `|`.
/// - greedy quantifiers `* + ?` and bounds `{n}`, `{n,}`, `{n,m}` with n ≤ m ≤ 255.
/// - `$options`: `""` or `"i"`. `i` is ASCII-only case-insensitivity (`a` ≡ `A`; `é` ≢ `É`), the
///   same in memory and in SQL whatever the database locale.
///
/// Rejected: backreferences (`\1`), lookarounds (`(?=`, `(?!`, `(?<=`, `(?<!`), inline options
/// (`(?i)`), named groups, lazy (`*?`) and possessive (`*+`) quantifiers, word boundaries
/// (`\b` means backspace in PostgreSQL), `\A \Z \z`, POSIX classes (`[[:alpha:]]`), `\x \u \p`
/// escapes, stacked quantifiers (`a**`), quantified anchors (`^*`), and empty classes.
/// The match is a search (unanchored unless `^`/`$` are used), as in MongoDB and PostgreSQL.
public struct FilterRegex: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written in the filter.
    public let pattern: String
    /// `$options: "i"`.
    public let caseInsensitive: Bool
    /// The equivalent PostgreSQL ARE, with case-insensitivity already folded in (use with `~`).
    public let postgresPattern: String
    let program: RegexProgram

    /// Parses `pattern`; the error is a message (the caller adds the location).
    public init(pattern: String, caseInsensitive: Bool = false) throws(RegexSyntaxError) {
        if let nul = pattern.unicodeScalars.firstIndex(of: "\0") {
            let offset = pattern.unicodeScalars.distance(from: pattern.unicodeScalars.startIndex, to: nul)
            throw RegexSyntaxError(offset: offset, message: "U+0000 is not allowed")
        }
        var parser = RegexParser(pattern: pattern, caseInsensitive: caseInsensitive)
        let node = try parser.parse()
        self.pattern = pattern
        self.caseInsensitive = caseInsensitive
        self.postgresPattern = node.postgres
        self.program = try RegexProgram(node)
    }

    /// Whether the pattern matches somewhere in `string`.
    public func matches(_ string: String) -> Bool {
        program.search(Array(string.unicodeScalars))
    }

    public var description: String { "/\(pattern)/\(caseInsensitive ? "i" : "")" }

    public static func == (lhs: FilterRegex, rhs: FilterRegex) -> Bool {
        // By Unicode scalars: canonically equivalent patterns (NFC/NFD) match different strings.
        lhs.pattern.utf8.elementsEqual(rhs.pattern.utf8) && lhs.caseInsensitive == rhs.caseInsensitive
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(Array(pattern.utf8))
        hasher.combine(caseInsensitive)
    }
}

/// A pattern outside the supported subset, with the offset (in Unicode scalars) where it goes wrong.
public struct RegexSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "\(message) at offset \(offset)" }
}

// MARK: - Character sets

/// A set of Unicode scalar values as sorted, disjoint, non-adjacent closed ranges (surrogates never included).
struct ScalarSet: Sendable, Hashable {
    private(set) var ranges: [ClosedRange<UInt32>]

    static let universe: [ClosedRange<UInt32>] = [0...0xD7FF, 0xE000...0x10FFFF]

    init(_ ranges: [ClosedRange<UInt32>]) {
        self.ranges = ScalarSet.normalize(ranges)
    }

    init(scalar: UInt32) { self.init([scalar...scalar]) }

    static let any = ScalarSet(universe)
    static let digit = ScalarSet([0x30...0x39])
    static let word = ScalarSet([0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
    static let space = ScalarSet([0x09...0x0D, 0x20...0x20])

    var isEmpty: Bool { ranges.isEmpty }
    var isAny: Bool { ranges == ScalarSet.universe }
    var single: UInt32? {
        ranges.count == 1 && ranges[0].lowerBound == ranges[0].upperBound ? ranges[0].lowerBound : nil
    }

    func contains(_ value: UInt32) -> Bool {
        var low = 0
        var high = ranges.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if value < ranges[mid].lowerBound {
                high = mid - 1
            } else if value > ranges[mid].upperBound {
                low = mid + 1
            } else {
                return true
            }
        }
        return false
    }

    func union(_ other: ScalarSet) -> ScalarSet { ScalarSet(ranges + other.ranges) }

    var complement: ScalarSet {
        var result: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for range in ranges {
            if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
            next = range.upperBound + 1
        }
        if next <= 0x10FFFF { result.append(next...0x10FFFF) }
        return ScalarSet(result)
    }

    /// Adds the other ASCII case of every ASCII letter in the set.
    var caseFolded: ScalarSet {
        var extra: [ClosedRange<UInt32>] = []
        for range in ranges {
            for (letters, shift) in [(UInt32(0x41)...0x5A, Int64(0x20)), (UInt32(0x61)...0x7A, Int64(-0x20))] {
                let low = max(range.lowerBound, letters.lowerBound)
                let high = min(range.upperBound, letters.upperBound)
                if low <= high {
                    extra.append(UInt32(Int64(low) + shift)...UInt32(Int64(high) + shift))
                }
            }
        }
        return ScalarSet(ranges + extra)
    }

    private static func normalize(_ input: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        // Clip to the universe (drop surrogates and anything above U+10FFFF).
        var clipped: [ClosedRange<UInt32>] = []
        for range in input {
            for part in universe {
                let low = max(range.lowerBound, part.lowerBound)
                let high = min(range.upperBound, part.upperBound)
                if low <= high { clipped.append(low...high) }
            }
        }
        clipped.sort { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<UInt32>] = []
        for range in clipped {
            if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}

// MARK: - Syntax tree

indirect enum RegexNode: Sendable, Hashable {
    case set(ScalarSet)
    case start
    case end
    case concat([RegexNode])
    case alternation([RegexNode])
    case group(RegexNode)
    case repetition(RegexNode, min: Int, max: Int?)

    /// The PostgreSQL ARE spelling. Every non-alphanumeric character is escaped, so the text is
    /// read the same way whatever PostgreSQL's flavour-specific rules for bare metacharacters are.
    var postgres: String {
        switch self {
        case .set(let set):
            return RegexNode.postgresSet(set)
        case .start:
            return "^"
        case .end:
            return "$"
        case .concat(let nodes):
            return nodes.map(\.postgres).joined()
        case .alternation(let nodes):
            return "(?:" + nodes.map(\.postgres).joined(separator: "|") + ")"
        case .group(let node):
            return "(?:" + node.postgres + ")"
        case .repetition(let node, let min, let max):
            let operand: String
            if case .set = node { operand = node.postgres } else { operand = "(?:" + node.postgres + ")" }
            switch (min, max) {
            case (0, nil): return operand + "*"
            case (1, nil): return operand + "+"
            case (0, 1?): return operand + "?"
            case (let min, nil): return operand + "{\(min),}"
            case (let min, let max?) where min == max: return operand + "{\(min)}"
            case (let min, let max?): return operand + "{\(min),\(max)}"
            }
        }
    }

    static func postgresSet(_ set: ScalarSet) -> String {
        if let single = set.single { return postgresChar(single) }
        if set.isAny { return "." }
        // Write the smaller of the set and its complement; a set containing U+0000 is always
        // written negated (NUL can't be spelled, and text can't contain it anyway).
        let complement = set.complement
        let negate = set.contains(0) || complement.ranges.count < set.ranges.count
        let body = (negate ? complement : set).ranges.map { range in
            range.lowerBound == range.upperBound
                ? postgresChar(range.lowerBound)
                : postgresChar(range.lowerBound) + "-" + postgresChar(range.upperBound)
        }.joined()
        return (negate ? "[^" : "[") + body + "]"
    }

    static func postgresChar(_ value: UInt32) -> String {
        switch value {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A:
            return String(UnicodeScalar(UInt8(value)))
        case 0x21...0x7E:
            return "\\" + String(UnicodeScalar(UInt8(value)))
        case 0...0xFFFF:
            return "\\u" + hex(value, width: 4)
        default:
            return "\\U" + hex(value, width: 8)
        }
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

// MARK: - Parser

struct RegexParser {
    let scalars: [Unicode.Scalar]
    let caseInsensitive: Bool
    var position = 0
    var depth = 0

    init(pattern: String, caseInsensitive: Bool) {
        scalars = Array(pattern.unicodeScalars)
        self.caseInsensitive = caseInsensitive
    }

    static let maxBound = 255
    static let maxDepth = 100

    mutating func parse() throws(RegexSyntaxError) -> RegexNode {
        let node = try parseAlternation()
        if position < scalars.count {
            // Only an unbalanced ')' stops the top-level alternation early.
            throw fail("unmatched ')'")
        }
        return node
    }

    private func fail(_ message: String, at offset: Int? = nil) -> RegexSyntaxError {
        RegexSyntaxError(offset: offset ?? position, message: message)
    }

    private var current: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    private func peek(_ ahead: Int) -> Unicode.Scalar? {
        position + ahead < scalars.count ? scalars[position + ahead] : nil
    }

    private mutating func parseAlternation() throws(RegexSyntaxError) -> RegexNode {
        var branches = [try parseConcat()]
        while current == "|" {
            position += 1
            branches.append(try parseConcat())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    private mutating func parseConcat() throws(RegexSyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        while let scalar = current, scalar != "|", scalar != ")" {
            let atomStart = position
            var atom = try parseAtom()
            if let quantifier = try parseQuantifier() {
                if case .start = atom { throw fail("a quantifier can't follow '^'", at: atomStart) }
                if case .end = atom { throw fail("a quantifier can't follow '$'", at: atomStart) }
                atom = .repetition(atom, min: quantifier.min, max: quantifier.max)
                if let next = current, "*+?{".unicodeScalars.contains(next) {
                    if next == "?" { throw fail("lazy quantifiers ('*?', '+?', '??', '{n,m}?') are not supported") }
                    if next == "+" { throw fail("possessive quantifiers ('*+', '++', …) are not supported") }
                    throw fail("a quantifier can't follow another quantifier (group the first: '(?:a*)*')")
                }
            }
            items.append(atom)
        }
        return items.count == 1 ? items[0] : .concat(items)
    }

    private mutating func parseQuantifier() throws(RegexSyntaxError) -> (min: Int, max: Int?)? {
        guard let scalar = current else { return nil }
        switch scalar {
        case "*": position += 1; return (0, nil)
        case "+": position += 1; return (1, nil)
        case "?": position += 1; return (0, 1)
        case "{":
            let start = position
            position += 1
            guard let min = parseNumber() else {
                throw fail("'{' must start a bound {n}, {n,} or {n,m} (write '\\{' for a literal brace)", at: start)
            }
            var max: Int? = min
            if current == "," {
                position += 1
                max = parseNumber()
            }
            guard current == "}" else {
                throw fail("'{' must start a bound {n}, {n,} or {n,m} (write '\\{' for a literal brace)", at: start)
            }
            position += 1
            if min > RegexParser.maxBound || (max ?? 0) > RegexParser.maxBound {
                throw fail("repetition bounds can't exceed \(RegexParser.maxBound)", at: start)
            }
            if let max, max < min { throw fail("repetition bound {\(min),\(max)} has max below min", at: start) }
            return (min, max)
        default:
            return nil
        }
    }

    private mutating func parseNumber() -> Int? {
        var value = 0
        var digits = 0
        while let scalar = current, ("0"..."9").contains(scalar) {
            value = min(value * 10 + Int(scalar.value - 0x30), 100_000)
            digits += 1
            position += 1
        }
        return digits > 0 ? value : nil
    }

    private func literal(_ value: UInt32) -> RegexNode {
        let set = ScalarSet(scalar: value)
        return .set(caseInsensitive ? set.caseFolded : set)
    }

    private func classNode(_ set: ScalarSet) -> RegexNode {
        .set(caseInsensitive ? set.caseFolded : set)
    }

    private mutating func parseAtom() throws(RegexSyntaxError) -> RegexNode {
        let start = position
        let scalar = scalars[position]
        switch scalar {
        case "(":
            position += 1
            if current == "?" {
                if peek(1) == ":" {
                    position += 2
                } else {
                    let construct: String
                    switch (peek(1), peek(2)) {
                    case ("=", _): construct = "lookahead '(?='"
                    case ("!", _): construct = "negative lookahead '(?!'"
                    case ("<", "="): construct = "lookbehind '(?<='"
                    case ("<", "!"): construct = "negative lookbehind '(?<!'"
                    case ("<", _), ("P", _), ("'", _): construct = "named group"
                    case (">", _): construct = "atomic group '(?>'"
                    case ("#", _): construct = "comment '(?#'"
                    default: construct = "inline options '(?…)'"
                    }
                    throw fail("unsupported construct: \(construct)", at: start)
                }
            }
            depth += 1
            if depth > RegexParser.maxDepth { throw fail("groups nested too deeply", at: start) }
            let inner = try parseAlternation()
            depth -= 1
            guard current == ")" else { throw fail("unmatched '('", at: start) }
            position += 1
            return .group(inner)
        case "[":
            return try parseClass()
        case ".":
            position += 1
            return .set(.any)
        case "^":
            position += 1
            return .start
        case "$":
            position += 1
            return .end
        case "*", "+", "?":
            throw fail("'\(scalar)' has nothing to repeat (write '\\\(scalar)' for the character)")
        case "{":
            throw fail("'{' has nothing to repeat (write '\\{' for a literal brace)")
        case "\\":
            return try parseEscape(inClass: false).node(caseInsensitive: caseInsensitive)
        default:
            // ']' and '}' on their own are plain characters.
            position += 1
            return literal(scalar.value)
        }
    }

    private enum Escape {
        case scalar(UInt32)
        case set(ScalarSet)

        func node(caseInsensitive: Bool) -> RegexNode {
            switch self {
            case .scalar(let value):
                let set = ScalarSet(scalar: value)
                return .set(caseInsensitive ? set.caseFolded : set)
            case .set(let set):
                return .set(caseInsensitive ? set.caseFolded : set)
            }
        }
    }

    /// At a backslash.
    private mutating func parseEscape(inClass: Bool) throws(RegexSyntaxError) -> Escape {
        let start = position
        position += 1
        guard let scalar = current else { throw fail("pattern ends with a lone '\\'", at: start) }
        position += 1
        switch scalar {
        case "n": return .scalar(0x0A)
        case "t": return .scalar(0x09)
        case "r": return .scalar(0x0D)
        case "f": return .scalar(0x0C)
        case "v": return .scalar(0x0B)
        case "d": return .set(.digit)
        case "w": return .set(.word)
        case "s": return .set(.space)
        case "D", "W", "S":
            if inClass { throw fail("'\\\(scalar)' is not supported inside a character class", at: start) }
            let base: ScalarSet = scalar == "D" ? .digit : scalar == "W" ? .word : .space
            return .set(base.complement)
        case "1"..."9":
            throw fail("backreferences ('\\\(scalar)') are not supported", at: start)
        case "0":
            throw fail("'\\0' is not supported", at: start)
        case "b", "B":
            throw fail("word boundaries ('\\\(scalar)') are not supported", at: start)
        case "A", "Z", "z", "G", "m", "M", "y", "Y":
            throw fail("the anchor '\\\(scalar)' is not supported (use '^' and '$')", at: start)
        default:
            if scalar.isASCII, !("a"..."z").contains(scalar), !("A"..."Z").contains(scalar),
                scalar.value >= 0x20, scalar.value < 0x7F
            {
                return .scalar(scalar.value)
            }
            throw fail("the escape '\\\(scalar)' is not supported", at: start)
        }
    }

    /// At '['.
    private mutating func parseClass() throws(RegexSyntaxError) -> RegexNode {
        let start = position
        position += 1
        var negated = false
        if current == "^" {
            negated = true
            position += 1
        }
        var set = ScalarSet([])
        var first = true
        while true {
            guard let scalar = current else { throw fail("unterminated character class '['", at: start) }
            if scalar == "]" {
                if first { throw fail("empty character class (write '\\]' for a literal ']')", at: start) }
                position += 1
                break
            }
            first = false
            let itemStart = position
            let low = try parseClassAtom()
            // A range `a-z`, unless the '-' is the class's last character.
            if current == "-", let after = peek(1), after != "]" {
                position += 1
                let high = try parseClassAtom()
                guard case .scalar(let lowValue) = low, case .scalar(let highValue) = high else {
                    throw fail("a range in a character class must be between two characters", at: itemStart)
                }
                guard lowValue <= highValue else {
                    throw fail("character range is out of order", at: itemStart)
                }
                set = set.union(ScalarSet([lowValue...highValue]))
            } else {
                switch low {
                case .scalar(let value): set = set.union(ScalarSet(scalar: value))
                case .set(let members): set = set.union(members)
                }
            }
        }
        if caseInsensitive { set = set.caseFolded }
        if negated { set = set.complement }
        if set.isEmpty { throw fail("character class matches nothing", at: start) }
        return .set(set)
    }

    private mutating func parseClassAtom() throws(RegexSyntaxError) -> Escape {
        guard let scalar = current else { throw fail("unterminated character class '['") }
        switch scalar {
        case "\\":
            return try parseEscape(inClass: true)
        case "[":
            if let next = peek(1), ":=.".unicodeScalars.contains(next) {
                throw fail("POSIX bracket expressions ('[\(next)') are not supported")
            }
            throw fail("write '\\[' for a literal '[' inside a character class")
        default:
            position += 1
            return .scalar(scalar.value)
        }
    }
}

// MARK: - Matching (Pike VM: a Thompson NFA simulated breadth-first, linear in the input)

struct RegexProgram: Sendable {
    enum Instruction: Sendable {
        case set(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case start
        case end
        case match
    }

    static let maxInstructions = 20_000

    private(set) var instructions: [Instruction] = []

    init(_ node: RegexNode) throws(RegexSyntaxError) {
        try emit(node)
        instructions.append(.match)
    }

    private mutating func append(_ instruction: Instruction) throws(RegexSyntaxError) {
        if instructions.count >= RegexProgram.maxInstructions {
            throw RegexSyntaxError(offset: 0, message: "pattern is too complex (repetitions expand too far)")
        }
        instructions.append(instruction)
    }

    private mutating func emit(_ node: RegexNode) throws(RegexSyntaxError) {
        switch node {
        case .set(let set):
            try append(.set(set))
        case .start:
            try append(.start)
        case .end:
            try append(.end)
        case .concat(let nodes):
            for node in nodes { try emit(node) }
        case .group(let node):
            try emit(node)
        case .alternation(let nodes):
            var jumps: [Int] = []
            for (index, branch) in nodes.enumerated() {
                if index < nodes.count - 1 {
                    let split = instructions.count
                    try append(.split(split + 1, -1))
                    try emit(branch)
                    jumps.append(instructions.count)
                    try append(.jump(-1))
                    instructions[split] = .split(split + 1, instructions.count)
                } else {
                    try emit(branch)
                }
            }
            for jump in jumps { instructions[jump] = .jump(instructions.count) }
        case .repetition(let node, let min, let max):
            for _ in 0..<min { try emit(node) }
            if let max {
                // Optional copies: split(next, end) each.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(instructions.count)
                    try append(.split(-1, -1))
                    try emit(node)
                }
                for split in splits { instructions[split] = .split(split + 1, instructions.count) }
            } else {
                let loop = instructions.count
                try append(.split(-1, -1))
                try emit(node)
                try append(.jump(loop))
                instructions[loop] = .split(loop + 1, instructions.count)
            }
        }
    }

    /// Whether the program matches anywhere in `input`.
    func search(_ input: [Unicode.Scalar]) -> Bool {
        let count = instructions.count
        var current: [Int] = []
        var next: [Int] = []
        var mark = [Int](repeating: -1, count: count)
        var stack: [Int] = []
        current.reserveCapacity(count)
        next.reserveCapacity(count)

        // Adds the thread at `pc` and everything reachable without consuming input at `position`;
        // returns true when a match is reachable.
        func add(_ pc: Int, at position: Int, into list: inout [Int], mark: inout [Int]) -> Bool {
            stack.append(pc)
            while let pc = stack.popLast() {
                if mark[pc] == position { continue }
                mark[pc] = position
                switch instructions[pc] {
                case .match:
                    stack.removeAll()
                    return true
                case .jump(let target):
                    stack.append(target)
                case .split(let first, let second):
                    stack.append(second)
                    stack.append(first)
                case .start:
                    if position == 0 { stack.append(pc + 1) }
                case .end:
                    if position == input.count { stack.append(pc + 1) }
                case .set:
                    list.append(pc)
                }
            }
            return false
        }

        for position in 0...input.count {
            // Unanchored search: a new thread starts at every position.
            if add(0, at: position, into: &current, mark: &mark) { return true }
            if position == input.count { break }
            let value = input[position].value
            next.removeAll(keepingCapacity: true)
            for pc in current {
                if case .set(let set) = instructions[pc], set.contains(value) {
                    if add(pc + 1, at: position + 1, into: &next, mark: &mark) { return true }
                }
            }
            swap(&current, &next)
        }
        return false
    }
}
