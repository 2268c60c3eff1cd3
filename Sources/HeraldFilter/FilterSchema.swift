import Foundation
import HeraldCore

/// What a filter may name when it runs over a table rather than over one JSON document: each
/// top-level field is a typed column, a `jsonb` column holding a document, or an alias for a path
/// inside one. Parsing a filter with a schema (`SchemaFilter`) rejects every other field and checks
/// and converts every literal on a typed column, so that the SQL can compare columns natively (and
/// use their btree indexes) while meaning exactly what the in-memory evaluator means.
///
/// The semantics are defined by a document per row, the *row document*: every column of the schema
/// under its own name, rendered as
/// - `text` → a JSON string; `integer` → a JSON integer; `double` → a JSON number;
/// - `timestamp` → the instant as an RFC 3339 string in UTC with exactly six fractional digits
///   (`2026-12-01T09:30:00.123456Z`, `CanonicalTimestamp`), PostgreSQL's precision: fixed width, so
///   comparing two of them as strings compares the instants;
/// - `uuid` → its lower-case canonical text (string order is the uuid order);
/// - `document` → the JSON document itself;
/// - SQL NULL → the member is absent (so `{"error": {"$exists": false}}` and `{"error": null}` select NULLs).
///
/// A schema-bound filter matches a row exactly when `Filter.matches` accepts its row document, after
/// the binding rewrote the literals into the row document's spellings: a literal compared with a
/// timestamp field must be an RFC 3339 date-time and becomes its canonical string (an offset or
/// more fractional digits compare as the instant they denote, rounded to the microsecond); one compared
/// with a uuid field must be a UUID (any case); with a text field a string; with an integer or double
/// field a number (on a double field, integers within ±2^53, which a double holds exactly); `null`
/// anywhere `$eq`/`$ne`/`$in`/`$nin` take it. Anything else is a `FilterError` at the literal, as are a
/// `$regex` on a field that isn't text and a sub-field of a typed column (`channel.x`). Aliases are
/// rewritten to the paths they stand for, so `{"metadata.plan": "pro"}` is `{"request.metadata.plan": "pro"}`.
public struct FilterSchema: Sendable, Hashable {
    /// The collection's name, for error messages ("the fields of attempts are …").
    public var name: String
    /// Top-level field name → what it is. A column or document field is the SQL column of that name.
    public var fields: [String: FieldMapping]

    /// - Precondition: every column and document name is a plain SQL identifier (`[a-z_][a-z0-9_]*`),
    ///   since the compiler writes it into the SQL; aliases point into document fields.
    public init(name: String, fields: [String: FieldMapping]) {
        for (field, mapping) in fields {
            switch mapping {
            case .column, .document(containmentIndexes: _):
                precondition(Self.isIdentifier(field), "schema field '\(field)' must be a plain SQL identifier")
                if case .document(let keys) = mapping {
                    precondition(keys.allSatisfy(Self.isIdentifier), "containment index keys must be plain identifiers")
                }
            case .alias(let target):
                let head = FieldPath(target).components[0]
                guard case .document? = fields[head] else {
                    preconditionFailure("alias '\(field)' must point into a document field, not '\(target)'")
                }
            }
        }
        self.name = name
        self.fields = fields
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first == "_" || ("a"..."z").contains(first) else { return false }
        return text.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    /// The typed columns, by name.
    public var columns: [(name: String, type: ColumnType, nullable: Bool)] {
        fields.keys.sorted().compactMap { name in
            if case .column(let type, let nullable) = fields[name]! { return (name, type, nullable) }
            return nil
        }
    }

    /// The field names as a client may use them (`request.*` for documents and their aliases).
    public var fieldNames: [String] {
        fields.keys.sorted().map { name in
            switch fields[name]! {
            case .column: name
            case .document, .alias: name + ".*"
            }
        }
    }

    /// The path as the row document has it, and the rule for literals compared with it (nil for JSON).
    func resolve(_ path: FieldPath, at location: FilterLocation) throws(FilterError) -> (FieldPath, LiteralRule?) {
        let head = path.components[0]
        // Keys compare by Unicode scalars, as everywhere in filters (a Swift dictionary would merge NFC and NFD).
        guard let index = fields.index(forKey: head), fields.keys[index].utf8.elementsEqual(head.utf8) else {
            throw FilterError(
                at: location,
                message: "unknown field '\(head)'; the fields of \(name) are \(fieldNames.joined(separator: ", "))")
        }
        switch fields.values[index] {
        case .column(let type, _):
            guard path.components.count == 1 else {
                throw FilterError(at: location, message: "\(head) is \(type.article) field and has no sub-fields")
            }
            return (path, LiteralRule(field: head, type: type))
        case .document:
            return (path, nil)
        case .alias(let target):
            return (FieldPath(components: FieldPath(target).components + path.components.dropFirst()), nil)
        }
    }
}

/// One top-level field of a `FilterSchema`.
public enum FieldMapping: Sendable, Hashable {
    /// A typed column; `nullable` when it can be NULL (absent from the row document).
    case column(ColumnType, nullable: Bool = false)
    /// A `jsonb` column (never NULL) holding a document; the rest of a path is looked up inside it.
    /// `containmentIndexes` are keys `k` for which a GIN (`jsonb_path_ops`) index on `(column -> 'k')`
    /// exists: equalities below them also emit a `@>` condition such an index can answer.
    case document(containmentIndexes: [String] = [])
    /// Another name for a dotted path into a document field (`metadata` → `request.metadata`).
    case alias(String)
}

/// The SQL type of a typed column, and so how its values render in the row document.
public enum ColumnType: String, Sendable, Hashable {
    /// `text`, compared as the evaluator compares strings (by Unicode scalars; ordering `COLLATE "C"`).
    case text
    /// `smallint`, `integer` or `bigint`.
    case integer
    /// `double precision`.
    case double
    /// `timestamptz`, rendered as `CanonicalTimestamp`.
    case timestamp
    /// `uuid`, rendered lower-case.
    case uuid

    var article: String {
        switch self {
        case .text: "a text"
        case .integer: "an integer"
        case .double: "a double"
        case .timestamp: "a timestamp"
        case .uuid: "a uuid"
        }
    }

    var expectation: String {
        switch self {
        case .text: "a string"
        case .integer, .double: "a number"
        case .timestamp: "an RFC 3339 date-time such as 2026-12-01T00:00:00Z"
        case .uuid: "a UUID string"
        }
    }
}

/// How literals compared with one typed field are checked and spelled.
struct LiteralRule: Sendable, Hashable {
    var field: String
    var type: ColumnType

    /// The literal as the row document spells such a value, or an error at `location`.
    func bind(_ value: JSONValue, at location: FilterLocation) throws(FilterError) -> JSONValue {
        switch (type, value) {
        case (_, .null), (.text, .string), (.integer, .integer), (.integer, .double), (.double, .double):
            return value
        case (.double, .integer(let integer)):
            // Beyond 2^53 the evaluator and PostgreSQL's float8 would round the integer differently.
            guard integer.magnitude <= 1 << 53 else {
                throw FilterError(
                    at: location, message: "\(field) is a double field: integers compared with it must be within ±2^53")
            }
            return value
        case (.timestamp, .string(let text)):
            guard let microseconds = CanonicalTimestamp.microseconds(parsing: text) else {
                throw FilterError(
                    at: location,
                    message: "\(field) is a timestamp field: '\(text)' is not an RFC 3339 date-time such as "
                        + "2026-12-01T00:00:00Z (years 1583 to 9999)")
            }
            return .string(CanonicalTimestamp.string(microseconds: microseconds))
        case (.uuid, .string(let text)):
            guard let id = UUID(uuidString: text) else {
                throw FilterError(at: location, message: "\(field) is a uuid field: '\(text)' is not a UUID")
            }
            return .string(id.uuidString.lowercased())
        default:
            throw FilterError(
                at: location,
                message: "\(field) is \(type.article) field: compare it with \(type.expectation) (or null), "
                    + "not \(FilterParser.describeValue(value))")
        }
    }

    func allowRegex(at location: FilterLocation) throws(FilterError) {
        guard type == .text else {
            throw FilterError(at: location, message: "$regex applies to text fields; \(field) is \(type.article) field")
        }
    }
}

/// A filter parsed against a `FilterSchema`: `filter` is the same filter over the row document
/// (aliases resolved, literals in the row document's spellings), `sql` its compilation over the
/// table's columns. `matches(rowDocument)` and the SQL agree (`AuditQueryTests` checks it).
public struct SchemaFilter: Sendable, Hashable {
    public let schema: FilterSchema
    public let filter: Filter

    /// Parses `document` as a filter over `schema`'s fields; the error locates the first problem.
    public init(_ document: JSONValue, schema: FilterSchema) throws(FilterError) {
        self.schema = schema
        self.filter = Filter(unchecked: try FilterParser.parseFilter(document, schema: schema))
    }

    /// Evaluates the filter on a row document.
    public func matches(_ rowDocument: JSONValue) -> Bool {
        filter.matches(rowDocument)
    }

    /// A SQL boolean expression (never NULL) over the schema's columns, unqualified, with `$n`
    /// placeholders from `firstParameter`; each parameter is bound as `text` (the SQL casts it).
    public func sql(firstParameter: Int = 1) -> SQLFragment {
        SQLCompiler.compile(filter.expression, schema: schema, firstParameter: firstParameter)
    }
}

/// Timestamps as row documents hold them: RFC 3339 in UTC with exactly six fractional digits
/// (`2026-12-01T09:30:00.123456Z`) — PostgreSQL's microsecond precision, and a fixed width, so that
/// string order is time order for the years 1583 to 9999.
public enum CanonicalTimestamp {
    /// Foundation's calendar is Julian before October 1582, PostgreSQL's proleptic Gregorian: only
    /// from 1583 on do both read a date alike (no audit row is older).
    static let minimum: Int64 = -12_212_553_600 * 1_000_000  // 1583-01-01T00:00:00Z
    static let maximum: Int64 = 253_402_300_800 * 1_000_000 - 1  // 9999-12-31T23:59:59.999999Z

    /// Microseconds since 1970 of an RFC 3339 date-time (`Timestamp.parse` reads it; the fraction,
    /// any number of digits, is read here and rounded half up to the microsecond), or nil.
    public static func microseconds(parsing text: String) -> Int64? {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count <= 64, let t = scalars.firstIndex(where: { $0 == "T" || $0 == "t" }) else { return nil }
        var whole = scalars
        var fraction: [UInt32] = []
        if let dot = scalars[t...].firstIndex(of: ".") {
            var end = dot + 1
            while end < scalars.count, ("0"..."9").contains(scalars[end]) { end += 1 }
            guard end > dot + 1 else { return nil }
            fraction = scalars[(dot + 1)..<end].map { $0.value - 48 }
            whole = Array(scalars[..<dot] + scalars[end...])
        }
        // RFC 3339 allows a lower-case t and z; Timestamp.parse reads upper case.
        var wholeText = ""
        wholeText.unicodeScalars.append(contentsOf: whole.map { $0 == "t" ? "T" : $0 == "z" ? "Z" : $0 })
        guard isCalendarDate(whole), let date = Timestamp.parse(wholeText) else { return nil }
        let seconds = date.timeIntervalSince1970.rounded()
        guard seconds.magnitude < 1e12 else { return nil }
        var micro: Int64 = 0
        for index in 0..<6 { micro = micro * 10 + Int64(index < fraction.count ? fraction[index] : 0) }
        if fraction.count > 6, fraction[6] >= 5 { micro += 1 }
        let result = Int64(seconds) * 1_000_000 + micro
        return (minimum...maximum).contains(result) ? result : nil
    }

    /// Whether the text starts with a real `YYYY-MM-DD` (Foundation's parser would roll 02-30 over to March).
    static func isCalendarDate(_ scalars: [Unicode.Scalar]) -> Bool {
        guard scalars.count >= 10, scalars[4] == "-", scalars[7] == "-" else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for scalar in scalars[range] {
                guard ("0"..."9").contains(scalar) else { return nil }
                value = value * 10 + Int(scalar.value - 48)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), (1...12).contains(month) else {
            return false
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (1...days).contains(day)
    }

    /// The canonical text of an instant given in microseconds since 1970.
    /// - Precondition: within the years 1583 to 9999.
    public static func string(microseconds: Int64) -> String {
        precondition((minimum...maximum).contains(microseconds), "timestamp outside the years 1583 to 9999")
        let perDay: Int64 = 86_400_000_000
        var days = microseconds / perDay
        var rest = microseconds % perDay
        if rest < 0 {
            days -= 1
            rest += perDay
        }
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let hour = rest / 3_600_000_000, minute = rest / 60_000_000 % 60, second = rest / 1_000_000 % 60
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
            + ".\(pad(rest % 1_000_000, 6))Z"
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
