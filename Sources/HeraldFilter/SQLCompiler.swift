import HeraldCore

/// Compiles a filter to a PostgreSQL boolean expression over a `jsonb` column.
///
/// Scheme (every predicate below is a definite true/false, never NULL, so `NOT`, `AND` and `OR`
/// compose exactly like their in-memory twins):
/// - path `a.b.0`: `(col #> ARRAY[$1::text,$2::text,$3::text])`: NULL when missing, jsonb `null` when
///   null. A component that PostgreSQL would read as an array index but Swift wouldn't (`-1`,
///   ` 1`) is applied with `-> $n::text` instead, which only looks up object keys.
/// - "any match" (the value, or for an array any element, satisfies P):
///   `COALESCE(CASE jsonb_typeof(v) WHEN 'array' THEN (P(v) OR EXISTS (SELECT 1 FROM
///   jsonb_array_elements(v) AS hf_eN(value) WHERE P(hf_eN.value))) ELSE P(v) END, false)`.
/// - `$eq x`: any match of `e = $n::jsonb` (jsonb equality: deep, numbers numeric);
///   `$eq null` adds `v IS NULL OR …`. `$in`: `e IN ($a::jsonb, …)`. `$ne`/`$nin`: `NOT` of those.
/// - comparisons: `CASE WHEN jsonb_typeof(e) = 'number' THEN (e)::numeric > $n::numeric END`, or for
///   a string operand `CASE WHEN jsonb_typeof(e) = 'string' THEN (e #>> '{}') COLLATE "C" > $n::text END`.
/// - `$regex`: `CASE WHEN jsonb_typeof(e) = 'string' THEN (e #>> '{}') COLLATE "C" ~ $n::text END`
///   with the pattern re-emitted by `FilterRegex.postgresPattern` (case folding already applied).
/// - `$exists`: `v IS [NOT] NULL`. `$not`: `NOT (…)`. `$nor`: `NOT (… OR …)`.
/// Identical parameter values share one placeholder.
///
/// Over a `FilterSchema` (`SchemaFilter.sql`), a path into a document field compiles as above over its
/// `jsonb` column, and a typed column `c` compiles natively, so btree indexes on it apply (literals are
/// already in the row document's spellings, see `FilterSchema`):
/// - `$eq x`: `c = $n::T` (`T` the column's type: `text`, `int8`, `float8`, `timestamptz`, `uuid`; a
///   double compared with an integer column is cast to `numeric`, exact); `$in`: `c IN (…)`;
///   `$eq null` / `$exists: false`: `c IS NULL`. A nullable column guards each comparison with
///   `c IS NOT NULL AND …`, so no predicate is NULL.
/// - comparisons `c > $n::T`; on text `c COLLATE "C" > $n::text` (equality needs no collation: in
///   PostgreSQL's deterministic collations equal means byte-equal). `$regex`: `c COLLATE "C" ~ $n::text`.
/// - on a document with a containment index on key `k`, `$eq`/`$in` at `k.a.b` also emit
///   `((col -> 'k') @> '{"a":{"b":x}}' OR (col -> 'k') @> '{"a":{"b":[x]}}')`, which every match
///   satisfies (so the meaning is unchanged) and a GIN `jsonb_path_ops` index answers.
struct SQLCompiler {
    private enum Target {
        case column(String)
        case schema(FilterSchema)
    }

    private let target: Target
    private let firstParameter: Int
    private var parameters: [String] = []
    /// Keyed by UTF-8 bytes: `String` keys would merge canonically equivalent values (NFC/NFD),
    /// which PostgreSQL (rightly, for us) treats as different.
    private var placeholders: [[UInt8]: String] = [:]
    private var aliasCount = 0

    static func compile(_ expression: FilterExpression, column: String, firstParameter: Int) -> SQLFragment {
        var compiler = SQLCompiler(target: .column(column), firstParameter: firstParameter)
        let sql = compiler.expression(expression)
        return SQLFragment(sql: sql, parameters: compiler.parameters)
    }

    /// - Precondition: `expression` was parsed against `schema` (it names only its columns and documents).
    static func compile(_ expression: FilterExpression, schema: FilterSchema, firstParameter: Int) -> SQLFragment {
        var compiler = SQLCompiler(target: .schema(schema), firstParameter: firstParameter)
        let sql = compiler.expression(expression)
        return SQLFragment(sql: sql, parameters: compiler.parameters)
    }

    private init(target: Target, firstParameter: Int) {
        self.target = target
        self.firstParameter = firstParameter
    }

    private mutating func parameter(_ value: String) -> String {
        let key = Array(value.utf8)
        if let existing = placeholders[key] { return existing }
        let placeholder = "$\(firstParameter + parameters.count)"
        parameters.append(value)
        placeholders[key] = placeholder
        return placeholder
    }

    private mutating func expression(_ expression: FilterExpression) -> String {
        switch expression {
        case .and(let children):
            if children.isEmpty { return "true" }
            return "(" + children.map { self.expression($0) }.joined(separator: " AND ") + ")"
        case .or(let children):
            if children.isEmpty { return "false" }
            return "(" + children.map { self.expression($0) }.joined(separator: " OR ") + ")"
        case .nor(let children):
            if children.isEmpty { return "true" }
            return "(NOT (" + children.map { self.expression($0) }.joined(separator: " OR ") + "))"
        case .field(let path, let condition):
            switch target {
            case .column(let column):
                return self.condition(condition, pathExpression(column, path.components))
            case .schema(let schema):
                let head = path.components[0]
                let rest = Array(path.components.dropFirst())
                switch schema.fields[head] {
                case .column(let type, let nullable)?:
                    return typed(condition, TypedColumn(name: head, type: type, nullable: nullable))
                case .document(let indexed)?:
                    let exact = self.condition(condition, pathExpression(head, rest))
                    guard let key = rest.first, indexed.contains(key),
                        let hint = containmentHint(condition, "(\(head) -> '\(key)')", Array(rest.dropFirst()))
                    else { return exact }
                    return "(\(hint) AND \(exact))"
                case .alias?, nil:
                    preconditionFailure("a schema-bound filter names only columns and documents, not '\(head)'")
                }
            }
        }
    }

    /// The jsonb at `components` under `column`, NULL when the path doesn't resolve.
    private mutating func pathExpression(_ column: String, _ components: [String]) -> String {
        var result = "(\(column))"
        var group: [String] = []
        func flush() {
            if !group.isEmpty {
                result = "(\(result) #> ARRAY[\(group.joined(separator: ","))])"
                group.removeAll()
            }
        }
        for component in components {
            let placeholder = parameter(component)
            if SQLCompiler.isObjectKeyOnly(component) {
                flush()
                result = "(\(result) -> \(placeholder)::text)"
            } else {
                group.append("\(placeholder)::text")
            }
        }
        flush()
        return result
    }

    /// Components that PostgreSQL's `#>` would take as an array index (it accepts leading white
    /// space, a sign, and negative indexes counting from the end) while `Int(component)` in Swift
    /// gives no valid index: these must only ever look up object keys.
    static func isObjectKeyOnly(_ component: String) -> Bool {
        if let index = Int(component), index >= 0 { return false }
        var scalars = Substring(component).unicodeScalars[...]
        while let first = scalars.first, [" ", "\t", "\n", "\u{0B}", "\u{0C}", "\r"].contains(first) {
            scalars = scalars.dropFirst()
        }
        if let first = scalars.first, first == "+" || first == "-" { scalars = scalars.dropFirst() }
        return !scalars.isEmpty && scalars.allSatisfy { ("0"..."9").contains($0) }
    }

    private mutating func condition(_ condition: FieldCondition, _ value: String) -> String {
        switch condition {
        case .eq(let literal):
            return equality(value, [literal])
        case .ne(let literal):
            return "(NOT \(equality(value, [literal])))"
        case .in(let literals):
            return equality(value, literals)
        case .nin(let literals):
            return "(NOT \(equality(value, literals)))"
        case .gt(let literal): return comparison(value, ">", literal)
        case .gte(let literal): return comparison(value, ">=", literal)
        case .lt(let literal): return comparison(value, "<", literal)
        case .lte(let literal): return comparison(value, "<=", literal)
        case .exists(let flag):
            return flag ? "(\(value) IS NOT NULL)" : "(\(value) IS NULL)"
        case .regex(let regex):
            let pattern = parameter(regex.postgresPattern)
            return anyMatch(value) { element in
                "CASE WHEN jsonb_typeof(\(element)) = 'string' THEN (\(element) #>> '{}') COLLATE \"C\" ~ \(pattern)::text END"
            }
        case .not(let inner):
            return "(NOT \(self.condition(inner, value)))"
        case .all(let conditions):
            if conditions.isEmpty { return "true" }
            return "(" + conditions.map { self.condition($0, value) }.joined(separator: " AND ") + ")"
        }
    }

    /// `$eq`/`$in`: the value or an element equals one of the literals; a `null` literal also
    /// matches a missing field.
    private mutating func equality(_ value: String, _ literals: [JSONValue]) -> String {
        if literals.isEmpty { return "false" }
        let list = literals.map { parameter(JSONWriter.string($0)) + "::jsonb" }
        let test =
            list.count == 1
            ? { (element: String) in "\(element) = \(list[0])" }
            : { (element: String) in "\(element) IN (\(list.joined(separator: ", ")))" }
        let match = anyMatch(value, test)
        if literals.contains(.null) {
            return "(\(value) IS NULL OR \(match))"
        }
        return match
    }

    private mutating func comparison(_ value: String, _ op: String, _ literal: JSONValue) -> String {
        switch literal {
        case .string(let string):
            let placeholder = parameter(string)
            return anyMatch(value) { element in
                "CASE WHEN jsonb_typeof(\(element)) = 'string' THEN (\(element) #>> '{}') COLLATE \"C\" \(op) \(placeholder)::text END"
            }
        default:
            // Parsing guarantees a finite number.
            let placeholder = parameter(JSONWriter.string(literal))
            return anyMatch(value) { element in
                "CASE WHEN jsonb_typeof(\(element)) = 'number' THEN (\(element))::numeric \(op) \(placeholder)::numeric END"
            }
        }
    }

    /// `predicate` holds for the value, or (for an array) for any of its elements. Never NULL.
    private mutating func anyMatch(_ value: String, _ predicate: (String) -> String) -> String {
        aliasCount += 1
        let alias = "hf_e\(aliasCount)"
        return "COALESCE(CASE jsonb_typeof(\(value)) WHEN 'array' THEN (\(predicate(value)) OR EXISTS "
            + "(SELECT 1 FROM jsonb_array_elements(\(value)) AS \(alias)(value) WHERE \(predicate("\(alias).value"))))"
            + " ELSE \(predicate(value)) END, false)"
    }
}

// MARK: Typed columns and containment hints

extension SQLCompiler {
    struct TypedColumn {
        var name: String
        var type: ColumnType
        var nullable: Bool
    }

    private mutating func typed(_ condition: FieldCondition, _ column: TypedColumn) -> String {
        switch condition {
        case .eq(let literal): return typedEquality(column, [literal])
        case .ne(let literal): return "(NOT \(typedEquality(column, [literal])))"
        case .in(let literals): return typedEquality(column, literals)
        case .nin(let literals): return "(NOT \(typedEquality(column, literals)))"
        case .gt(let literal): return typedComparison(column, ">", literal)
        case .gte(let literal): return typedComparison(column, ">=", literal)
        case .lt(let literal): return typedComparison(column, "<", literal)
        case .lte(let literal): return typedComparison(column, "<=", literal)
        case .exists(let flag):
            guard column.nullable else { return flag ? "true" : "false" }
            return flag ? "(\(column.name) IS NOT NULL)" : "(\(column.name) IS NULL)"
        case .regex(let regex):
            return guarded(column, "\(column.name) COLLATE \"C\" ~ \(parameter(regex.postgresPattern))::text")
        case .not(let inner):
            return "(NOT \(typed(inner, column)))"
        case .all(let conditions):
            if conditions.isEmpty { return "true" }
            return "(" + conditions.map { typed($0, column) }.joined(separator: " AND ") + ")"
        }
    }

    /// `predicate` over a column value that is known not to be NULL.
    private func guarded(_ column: TypedColumn, _ predicate: String) -> String {
        column.nullable ? "(\(column.name) IS NOT NULL AND \(predicate))" : "(\(predicate))"
    }

    /// The literal as a placeholder cast to the column's type (numbers keep their exact value).
    private mutating func typedLiteral(_ literal: JSONValue, _ type: ColumnType) -> String {
        switch (type, literal) {
        case (.integer, .integer): return parameter(JSONWriter.string(literal)) + "::int8"
        case (.integer, _): return parameter(JSONWriter.string(literal)) + "::numeric"
        case (.double, _): return parameter(JSONWriter.string(literal)) + "::float8"
        case (.text, .string(let text)): return parameter(text) + "::text"
        case (.timestamp, .string(let text)): return parameter(text) + "::timestamptz"
        case (.uuid, .string(let text)): return parameter(text) + "::uuid"
        default: preconditionFailure("literal \(literal) was not bound to a \(type) column")
        }
    }

    private mutating func typedEquality(_ column: TypedColumn, _ literals: [JSONValue]) -> String {
        let values = literals.filter { $0 != .null }
        let matchesNull = column.nullable && values.count < literals.count
        // One list per cast, so that an integer column keeps its index for the integer literals.
        var groups: [(cast: String, placeholders: [String])] = []
        for value in values {
            let placeholder = typedLiteral(value, column.type)
            let cast = String(placeholder.drop { $0 != ":" })
            if let index = groups.firstIndex(where: { $0.cast == cast }) {
                if !groups[index].placeholders.contains(placeholder) { groups[index].placeholders.append(placeholder) }
            } else {
                groups.append((cast, [placeholder]))
            }
        }
        let tests = groups.map { group in
            group.placeholders.count == 1
                ? "\(column.name) = \(group.placeholders[0])"
                : "\(column.name) IN (\(group.placeholders.joined(separator: ", ")))"
        }
        switch (tests.isEmpty, matchesNull) {
        case (true, false): return "false"
        case (true, true): return "(\(column.name) IS NULL)"
        case (false, let null):
            let match = guarded(column, tests.joined(separator: " OR "))
            return null ? "(\(column.name) IS NULL OR \(match))" : match
        }
    }

    private mutating func typedComparison(_ column: TypedColumn, _ op: String, _ literal: JSONValue) -> String {
        let value = typedLiteral(literal, column.type)
        let lhs = column.type == .text ? "\(column.name) COLLATE \"C\"" : column.name
        return guarded(column, "\(lhs) \(op) \(value)")
    }

    /// A containment test every value satisfying `condition` at `components` below `indexed` passes,
    /// or nil when there is none (only equalities with non-null literals, through object keys, have one).
    private mutating func containmentHint(_ condition: FieldCondition, _ indexed: String, _ components: [String]) -> String? {
        // A component the evaluator could read as an array index can't be written as an object in `@>`.
        guard !components.contains(where: { Int($0).map { $0 >= 0 } ?? false }) else { return nil }
        func nest(_ value: JSONValue) -> JSONValue {
            components.reversed().reduce(value) { inner, key in .object([key: inner]) }
        }
        switch condition {
        case .eq(let literal):
            return containment([literal], indexed, nest)
        case .in(let literals):
            return containment(literals, indexed, nest)
        case .all(let conditions):
            let hints = conditions.compactMap { containmentHint($0, indexed, components) }
            return hints.isEmpty ? nil : hints.joined(separator: " AND ")
        default:
            return nil
        }
    }

    /// `(indexed @> nest(x) OR indexed @> nest([x]))` for each literal: equal to `x`, or an array with
    /// an element equal to `x`. Nil when a literal is `null` (which also matches a missing field).
    private mutating func containment(_ literals: [JSONValue], _ indexed: String, _ nest: (JSONValue) -> JSONValue) -> String? {
        guard !literals.isEmpty, !literals.contains(.null) else { return nil }
        var tests: [String] = []
        for literal in literals {
            tests.append("\(indexed) @> \(parameter(JSONWriter.string(nest(literal))))::jsonb")
            tests.append("\(indexed) @> \(parameter(JSONWriter.string(nest(.array([literal])))))::jsonb")
        }
        return "(" + tests.joined(separator: " OR ") + ")"
    }
}
