import HeraldCore

/// A MongoDB-style filter over `JSONValue` documents, parsed and validated once, then either
/// evaluated in memory (`matches`) or compiled to a PostgreSQL boolean expression over a `jsonb`
/// column (`sql(column:firstParameter:)`). Both give the same answer on the same document
/// (`FilterSQLTests` checks this against a real server).
///
/// Language:
/// - Top-level keys are dotted field paths (`"to.phone"`, `"data.items.0.sku"`) or `$and`/`$or`/`$nor`
///   (each a non-empty array of filters); several keys in one object are ANDed; `{}` matches everything.
/// - A path is resolved like `JSONValue.value(atPath:)`: object keys (compared by Unicode scalars),
///   and on arrays a decimal index (`Int(component)`, in range; no negative indexes). There is no
///   implicit traversal of arrays (`items.sku` does not look inside each item); a path that doesn't
///   resolve is "missing".
/// - `{"path": literal}` is `{"path": {"$eq": literal}}`; an object literal without `$` keys is an
///   equality on the whole sub-document (key order irrelevant).
/// - `$eq`: deep equality (numbers numerically: `2 == 2.0`; strings by Unicode scalars, so NFC ≠ NFD).
///   If the value is an array, it also matches when any element is equal. `$eq: null` also matches a
///   missing field (MongoDB). `$ne` is exactly `NOT $eq` (so it matches missing fields).
/// - `$gt $gte $lt $lte`: the operand must be a number or a string; numbers compare numerically and
///   exactly (Int64 against Double without rounding), strings by Unicode scalar values (PostgreSQL
///   `COLLATE "C"`); any other type never matches; on an array, any element may match.
/// - `$in`/`$nin`: `$eq` against any operand / `NOT $in`. `$exists: true|false`.
/// - `$regex` (+ `$options: "i"`): see `FilterRegex` for the supported subset; matches strings, or
///   arrays with a matching string element.
/// - `$not: {operators}` negates its operators (so it matches missing fields unless they match).
/// - Literals must be finite numbers and strings without U+0000 (PostgreSQL text can't hold it).
public struct Filter: Sendable, Hashable {
    /// The validated syntax tree.
    public let expression: FilterExpression

    /// Parses and validates a filter document.
    public init(_ document: JSONValue) throws(FilterError) {
        expression = try FilterParser.parseFilter(document)
    }

    /// Parses and validates a filter given as JSON text.
    public init(json: String) throws(FilterError) {
        try self.init(FilterParser.decodeJSON(json))
    }

    /// A filter from an already-built syntax tree. The tree is validated the same way as a parsed one
    /// (non-empty logical lists, literals PostgreSQL can hold, valid paths).
    public init(expression: FilterExpression) throws(FilterError) {
        try FilterParser.validate(expression, at: .root)
        self.expression = expression
    }

    /// The filter that matches every document (`{}`).
    public static let matchAll = Filter(unchecked: .and([]))

    init(unchecked expression: FilterExpression) {
        self.expression = expression
    }

    /// Evaluates the filter in memory.
    public func matches(_ document: JSONValue) -> Bool {
        FilterEvaluator.matches(expression, document)
    }

    /// A SQL boolean expression (never NULL) over the `jsonb` column `column`, with `$n` placeholders
    /// numbered from `firstParameter`. `column` is spliced verbatim, so it must be a trusted SQL
    /// expression (a column name, `t.doc`, …); every path component and value travels as a parameter,
    /// each to be bound as a PostgreSQL `text` value (the SQL casts it).
    public func sql(column: String, firstParameter: Int = 1) -> SQLFragment {
        SQLCompiler.compile(expression, column: column, firstParameter: firstParameter)
    }
}

/// A piece of SQL plus the text values of its `$n` placeholders, in order.
public struct SQLFragment: Sendable, Hashable {
    public var sql: String
    public var parameters: [String]

    public init(sql: String, parameters: [String]) {
        self.sql = sql
        self.parameters = parameters
    }
}

/// Why a filter was rejected: `path` locates the offending part (`"$or.1.data.amount.$gt"`; empty
/// for the whole filter), `message` says what is wrong. `components` are the same location as the
/// JSON keys and array indexes from the filter's root (`["$or", "1", "data.amount", "$gt"]`): unlike the
/// dotted `path`, they stay exact when a key contains a dot, so `jsonPointer(under:)` can name the
/// place in a request body. Two errors are equal when their `path` and `message` are.
public struct FilterError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var components: [String]

    /// An error at a dotted path (components split on dots).
    public init(path: String, message: String) {
        self.path = path
        self.message = message
        self.components = path.isEmpty ? [] : path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }

    init(at location: FilterLocation, message: String) {
        self.path = location.dotted
        self.message = message
        self.components = location.components
    }

    public var description: String {
        path.isEmpty ? "invalid filter: \(message)" : "invalid filter at \(path): \(message)"
    }

    /// The RFC 6901 JSON Pointer of the offending part, below `prefix` (e.g. `"/filter"` gives
    /// `/filter/outcome/$nee`); `~` and `/` in keys are escaped as `~0` and `~1`.
    public func jsonPointer(under prefix: String = "") -> String {
        JSONPointer.string(components, under: prefix)
    }

    public static func == (lhs: FilterError, rhs: FilterError) -> Bool {
        lhs.path == rhs.path && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(path)
        hasher.combine(message)
    }
}

/// RFC 6901 JSON Pointers.
public enum JSONPointer {
    /// `/a/b~1c` for the keys `a`, `b/c`, below `prefix`: `~` and `/` in keys are escaped as `~0` and `~1`.
    public static func string(_ components: [String], under prefix: String = "") -> String {
        var pointer = prefix
        for component in components {
            pointer += "/"
            for scalar in component.unicodeScalars {
                switch scalar {
                case "~": pointer += "~0"
                case "/": pointer += "~1"
                default: pointer.unicodeScalars.append(scalar)
                }
            }
        }
        return pointer
    }
}

/// Where the parser is in a filter document: the keys and indexes from its root.
struct FilterLocation: Sendable, Hashable {
    var components: [String]

    static let root = FilterLocation(components: [])

    var dotted: String { components.joined(separator: ".") }
}

/// The syntax tree of a filter.
public indirect enum FilterExpression: Sendable, Hashable {
    /// All must match (`$and`, or several keys in one object). Empty: matches everything.
    case and([FilterExpression])
    /// At least one must match (`$or`).
    case or([FilterExpression])
    /// None may match (`$nor`).
    case nor([FilterExpression])
    /// A condition on the value at a dotted path (missing when the path doesn't resolve).
    case field(path: FieldPath, condition: FieldCondition)
}

/// A dotted path, split into components. Each component is an object key, or (when the value there
/// is an array) a decimal array index (as `JSONValue.value(atPath:)` reads it: `Int(component)`, in range).
public struct FieldPath: Sendable, Hashable, CustomStringConvertible {
    public var components: [String]

    public init(components: [String]) { self.components = components }

    /// Splits `"a.b.0"` on dots.
    public init(_ dotted: String) {
        components = dotted.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }

    public var description: String { components.joined(separator: ".") }
}

/// A condition on one field's value (which may be missing).
public indirect enum FieldCondition: Sendable, Hashable {
    /// Equal (deep; numbers compare numerically), or an array containing an equal element.
    /// `null` also matches a missing field.
    case eq(JSONValue)
    /// Not `eq` (so also true for a missing field).
    case ne(JSONValue)
    /// Ordering comparisons: the operand is a number or a string; only values of the same kind
    /// (or arrays with such an element) can match.
    case gt(JSONValue)
    case gte(JSONValue)
    case lt(JSONValue)
    case lte(JSONValue)
    /// `eq` against any of the values.
    case `in`([JSONValue])
    /// Not `in`.
    case nin([JSONValue])
    /// Whether the path resolves (a `null` value exists).
    case exists(Bool)
    /// The value is a string (or an array with a string element) in which the pattern matches.
    case regex(FilterRegex)
    /// The negation of the condition (true for a missing field unless the condition matches missing).
    case not(FieldCondition)
    /// All conditions (several operators on one field).
    case all([FieldCondition])
}
