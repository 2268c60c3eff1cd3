import Foundation
import HeraldCore

/// Turns a filter document into a `FilterExpression`, or a `FilterError` locating the first problem
/// (keys are visited in sorted order, so the error reported is deterministic).
enum FilterParser {
    static let logicalOperators: Set<String> = ["$and", "$or", "$nor"]
    static let fieldOperators: Set<String> = [
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex", "$options", "$not",
    ]
    /// MongoDB operators Herald knowingly doesn't implement (a clearer message than "unknown").
    static let unsupportedOperators: Set<String> = [
        "$all", "$elemMatch", "$size", "$type", "$mod", "$where", "$expr", "$text", "$jsonSchema",
        "$bitsAllSet", "$bitsAnySet", "$bitsAllClear", "$bitsAnyClear", "$geoWithin", "$geoIntersects",
        "$near", "$nearSphere", "$comment",
    ]

    static func decodeJSON(_ json: String) throws(FilterError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        } catch {
            throw FilterError(at: .root, message: "not valid JSON: \(describe(error))")
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            let underlying = context.underlyingError.map { " (\($0))" } ?? ""
            return context.debugDescription + underlying
        default:
            return "\(error)"
        }
    }

    /// Starts with '$' (checked by scalar: `hasPrefix` compares characters, and "$\u{301}" is one).
    static func isOperator(_ key: String) -> Bool {
        key.unicodeScalars.first == "$"
    }

    static func join(_ location: FilterLocation, _ key: String) -> FilterLocation {
        FilterLocation(components: location.components + [key])
    }

    // MARK: Filters (top level and inside $and/$or/$nor)

    /// With a `schema`, every field is resolved by it (unknown fields are errors, aliases are rewritten)
    /// and every literal on a typed field is checked and converted to the spelling its documents use.
    static func parseFilter(_ document: JSONValue, at location: FilterLocation = .root, schema: FilterSchema? = nil)
        throws(FilterError) -> FilterExpression
    {
        guard case .object(let members) = document else {
            throw FilterError(at: location, message: "a filter must be an object, not \(document.typeName)")
        }
        var clauses: [FilterExpression] = []
        for key in members.keys.sorted() {
            let value = members[key]!
            let keyLocation = join(location, key)
            if isOperator(key) {
                clauses.append(try parseLogical(key, value, at: keyLocation, schema: schema))
            } else {
                var path = try parsePath(key, at: keyLocation)
                var rule: LiteralRule?
                if let schema { (path, rule) = try schema.resolve(path, at: keyLocation) }
                clauses.append(.field(path: path, condition: try parseFieldValue(value, at: keyLocation, rule: rule)))
            }
        }
        return clauses.count == 1 ? clauses[0] : .and(clauses)
    }

    private static func parseLogical(_ key: String, _ value: JSONValue, at location: FilterLocation, schema: FilterSchema?)
        throws(FilterError) -> FilterExpression
    {
        guard logicalOperators.contains(key) else {
            if fieldOperators.contains(key) {
                throw FilterError(
                    at: location,
                    message: "\(key) is not allowed at the top level of a filter: use it on a field, "
                        + "as in {\"field\": {\"\(key)\": …}} (only $and, $or and $nor go here)")
            }
            throw unknownOperator(key, at: location)
        }
        let needs = "\(key) needs a non-empty array of objects"
        guard case .array(let elements) = value, !elements.isEmpty else {
            throw FilterError(at: location, message: "\(needs), not \(describeValue(value))")
        }
        var children: [FilterExpression] = []
        for (index, element) in elements.enumerated() {
            guard case .object = element else {
                throw FilterError(at: join(location, String(index)), message: "\(needs); this element is \(element.typeName)")
            }
            children.append(try parseFilter(element, at: join(location, String(index)), schema: schema))
        }
        switch key {
        case "$and": return .and(children)
        case "$or": return .or(children)
        default: return .nor(children)
        }
    }

    static func unknownOperator(_ key: String, at location: FilterLocation) -> FilterError {
        if unsupportedOperators.contains(key) {
            return FilterError(at: location, message: "unsupported operator '\(key)'")
        }
        return FilterError(at: location, message: "unknown operator '\(key)'")
    }

    static func parsePath(_ dotted: String, at location: FilterLocation) throws(FilterError) -> FieldPath {
        let path = FieldPath(dotted)
        try validatePath(path, at: location)
        return path
    }

    static func validatePath(_ path: FieldPath, at location: FilterLocation) throws(FilterError) {
        if path.components.isEmpty || path.components.contains(where: \.isEmpty) {
            throw FilterError(at: location, message: "a field path can't be empty or have an empty component")
        }
        if path.components.contains(where: { isOperator($0) }) {
            throw FilterError(at: location, message: "a field path component can't start with '$'")
        }
        if path.components.contains(where: { $0.unicodeScalars.contains("\0") }) {
            throw FilterError(at: location, message: "a field path can't contain U+0000")
        }
    }

    // MARK: Field conditions

    /// `rule` (a schema's typed field) checks and converts every literal; nil for untyped (JSON) values.
    static func parseFieldValue(_ value: JSONValue, at location: FilterLocation, rule: LiteralRule? = nil)
        throws(FilterError) -> FieldCondition
    {
        if case .object(let members) = value, !members.isEmpty {
            let operatorCount = members.keys.count(where: { isOperator($0) })
            if operatorCount == members.count {
                return try parseOperators(members, at: location, rule: rule)
            }
            if operatorCount > 0 {
                throw FilterError(
                    at: location,
                    message: "an object can't mix operators ($…) and field names: use only operators, "
                        + "or only fields for an equality on the whole sub-document")
            }
        }
        try validateLiteral(value, at: location)
        return .eq(try bind(value, rule, at: location))
    }

    static func bind(_ value: JSONValue, _ rule: LiteralRule?, at location: FilterLocation) throws(FilterError) -> JSONValue {
        guard let rule else { return value }
        return try rule.bind(value, at: location)
    }

    /// An operator object: every key starts with '$'. Several operators are ANDed.
    static func parseOperators(_ members: [String: JSONValue], at location: FilterLocation, rule: LiteralRule? = nil)
        throws(FilterError) -> FieldCondition
    {
        var conditions: [FieldCondition] = []
        for key in members.keys.sorted() {
            let value = members[key]!
            let here = join(location, key)
            switch key {
            case "$eq":
                try validateLiteral(value, at: here)
                conditions.append(.eq(try bind(value, rule, at: here)))
            case "$ne":
                try validateLiteral(value, at: here)
                conditions.append(.ne(try bind(value, rule, at: here)))
            case "$gt", "$gte", "$lt", "$lte":
                try validateOrderable(value, key, at: here)
                let value = try bind(value, rule, at: here)
                switch key {
                case "$gt": conditions.append(.gt(value))
                case "$gte": conditions.append(.gte(value))
                case "$lt": conditions.append(.lt(value))
                default: conditions.append(.lte(value))
                }
            case "$in", "$nin":
                guard case .array(let elements) = value else {
                    throw FilterError(at: here, message: "\(key) needs an array, not \(describeValue(value))")
                }
                var bound: [JSONValue] = []
                for (index, element) in elements.enumerated() {
                    try validateLiteral(element, at: join(here, String(index)))
                    bound.append(try bind(element, rule, at: join(here, String(index))))
                }
                conditions.append(key == "$in" ? .in(bound) : .nin(bound))
            case "$exists":
                guard case .bool(let flag) = value else {
                    throw FilterError(at: here, message: "$exists needs true or false, not \(describeValue(value))")
                }
                conditions.append(.exists(flag))
            case "$regex":
                if let rule { try rule.allowRegex(at: here) }
                conditions.append(.regex(try parseRegex(value, options: members["$options"], at: location)))
            case "$options":
                guard members["$regex"] != nil else {
                    throw FilterError(at: here, message: "$options is only allowed next to $regex")
                }
            case "$not":
                guard case .object(let inner) = value, !inner.isEmpty,
                    inner.keys.allSatisfy({ isOperator($0) })
                else {
                    throw FilterError(
                        at: here,
                        message: "$not needs a non-empty object of operators, as in {\"$not\": {\"$gt\": 5}}, "
                            + "not \(describeValue(value))")
                }
                conditions.append(.not(try parseOperators(inner, at: here, rule: rule)))
            case "$and", "$or", "$nor":
                throw FilterError(
                    at: here, message: "\(key) is only allowed at the top level of a filter, not on a field")
            default:
                throw unknownOperator(key, at: here)
            }
        }
        return conditions.count == 1 ? conditions[0] : .all(conditions)
    }

    static func parseRegex(_ value: JSONValue, options: JSONValue?, at location: FilterLocation) throws(FilterError)
        -> FilterRegex
    {
        let here = join(location, "$regex")
        guard case .string(let pattern) = value else {
            throw FilterError(at: here, message: "$regex needs a string, not \(describeValue(value))")
        }
        var caseInsensitive = false
        if let options {
            let optionsHere = join(location, "$options")
            switch options {
            case .string(""): break
            case .string("i"): caseInsensitive = true
            case .string(let other):
                throw FilterError(
                    at: optionsHere, message: "unsupported $options \"\(other)\": only \"i\" (or \"\") is supported")
            default:
                throw FilterError(at: optionsHere, message: "$options needs a string, not \(describeValue(options))")
            }
        }
        if pattern.unicodeScalars.contains("\0") {
            throw FilterError(at: here, message: "$regex can't contain U+0000")
        }
        do {
            return try FilterRegex(pattern: pattern, caseInsensitive: caseInsensitive)
        } catch {
            throw FilterError(at: here, message: "invalid $regex: \(error)")
        }
    }

    static func validateOrderable(_ value: JSONValue, _ key: String, at location: FilterLocation) throws(FilterError) {
        switch value {
        case .integer, .double, .string:
            try validateLiteral(value, at: location)
        default:
            throw FilterError(at: location, message: "\(key) needs a number or a string, not \(describeValue(value))")
        }
    }

    /// Literals must be storable in PostgreSQL: finite numbers, no U+0000 in strings or keys.
    static func validateLiteral(_ value: JSONValue, at location: FilterLocation) throws(FilterError) {
        switch value {
        case .double(let double) where !double.isFinite:
            throw FilterError(at: location, message: "numbers must be finite")
        case .string(let string) where string.unicodeScalars.contains("\0"):
            throw FilterError(at: location, message: "strings can't contain U+0000")
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                try validateLiteral(element, at: join(location, String(index)))
            }
        case .object(let members):
            for key in members.keys.sorted() {
                if key.unicodeScalars.contains("\0") {
                    throw FilterError(at: location, message: "object keys can't contain U+0000")
                }
                try validateLiteral(members[key]!, at: join(location, key))
            }
        default:
            break
        }
    }

    static func describeValue(_ value: JSONValue) -> String {
        switch value {
        case .array(let elements) where elements.isEmpty: "an empty array"
        case .object(let members) where members.isEmpty: "an empty object"
        case .array: "an array"
        case .object: "an object"
        case .integer, .double: "a number"
        case .string: "a string"
        case .bool: "a boolean"
        case .null: "null"
        }
    }

    // MARK: Validating hand-built trees

    static func validate(_ expression: FilterExpression, at location: FilterLocation) throws(FilterError) {
        switch expression {
        case .and(let children), .or(let children), .nor(let children):
            let name: String
            switch expression {
            case .and: name = "$and"
            case .or: name = "$or"
            default: name = "$nor"
            }
            if children.isEmpty, name != "$and" {
                throw FilterError(at: join(location, name), message: "\(name) needs a non-empty array of objects")
            }
            for (index, child) in children.enumerated() {
                try validate(child, at: join(join(location, name), String(index)))
            }
        case .field(let path, let condition):
            let here = join(location, path.description)
            try validatePath(path, at: here)
            try validate(condition, at: here)
        }
    }

    static func validate(_ condition: FieldCondition, at location: FilterLocation) throws(FilterError) {
        switch condition {
        case .eq(let value): try validateLiteral(value, at: join(location, "$eq"))
        case .ne(let value): try validateLiteral(value, at: join(location, "$ne"))
        case .gt(let value): try validateOrderable(value, "$gt", at: join(location, "$gt"))
        case .gte(let value): try validateOrderable(value, "$gte", at: join(location, "$gte"))
        case .lt(let value): try validateOrderable(value, "$lt", at: join(location, "$lt"))
        case .lte(let value): try validateOrderable(value, "$lte", at: join(location, "$lte"))
        case .in(let values): try validateLiteral(.array(values), at: join(location, "$in"))
        case .nin(let values): try validateLiteral(.array(values), at: join(location, "$nin"))
        case .exists, .regex: break
        case .not(let inner): try validate(inner, at: join(location, "$not"))
        case .all(let conditions):
            if conditions.isEmpty { throw FilterError(at: location, message: "an operator object can't be empty") }
            for condition in conditions { try validate(condition, at: location) }
        }
    }
}
