import Foundation
import HeraldCore
import HeraldFilter
import Logging
import PostgresNIO

/// What the audit query can read: a tenant's notifications, deliveries and attempts, each as a
/// `FilterSchema` over its table. Only these columns are filterable and returned: never `tenant`
/// (the server adds it), `job`, `attempt_base`, `claimed_by`, `lease_until`, `request_hash` or `response`.
public enum AuditCollection: String, CaseIterable, Sendable, Hashable {
    case attempts, deliveries, notifications

    /// The fields in display order, each the column of that name.
    public var fieldOrder: [String] {
        switch self {
        case .attempts:
            ["id", "started_at", "channel", "outcome", "http_status", "number", "duration_ms", "provider", "worker",
             "error", "provider_message_id", "finished_at", "delivery_id", "notification_id"]
        case .deliveries:
            ["id", "created_at", "updated_at", "channel", "status", "attempt_count", "last_error", "provider_message_id",
             "notification_id"]
        case .notifications:
            ["id", "created_at", "config_version", "idempotency_key", "request"]
        }
    }

    public var schema: FilterSchema {
        switch self {
        case .attempts: Self.attemptsSchema
        case .deliveries: Self.deliveriesSchema
        case .notifications: Self.notificationsSchema
        }
    }

    /// Newest first by the collection's main time.
    public var defaultSort: AuditSort {
        switch self {
        case .attempts: AuditSort(field: "started_at", descending: true)
        case .deliveries, .notifications: AuditSort(field: "created_at", descending: true)
        }
    }

    /// Columns a query may sort by: the typed ones that are never NULL (so the cursor's order is total).
    public var sortableFields: [String] {
        schema.columns.filter { !$0.nullable }.map(\.name)
    }

    var idType: ColumnType { self == .attempts ? .integer : .uuid }

    static let attemptsSchema = FilterSchema(name: "attempts", fields: [
        "id": .column(.integer), "delivery_id": .column(.uuid), "notification_id": .column(.uuid),
        "number": .column(.integer), "started_at": .column(.timestamp), "finished_at": .column(.timestamp),
        "duration_ms": .column(.double), "outcome": .column(.text), "http_status": .column(.integer, nullable: true),
        "error": .column(.text, nullable: true), "provider_message_id": .column(.text, nullable: true),
        "worker": .column(.text), "provider": .column(.text), "channel": .column(.text),
    ])

    static let deliveriesSchema = FilterSchema(name: "deliveries", fields: [
        "id": .column(.uuid), "notification_id": .column(.uuid), "channel": .column(.text), "status": .column(.text),
        "attempt_count": .column(.integer), "last_error": .column(.text, nullable: true),
        "provider_message_id": .column(.text, nullable: true), "created_at": .column(.timestamp),
        "updated_at": .column(.timestamp),
    ])

    /// `request` is the notification as the client sent it; `metadata` and `template` are its members.
    /// Migration 5 indexes `request -> 'metadata'` with GIN (`jsonb_path_ops`).
    static let notificationsSchema = FilterSchema(name: "notifications", fields: [
        "id": .column(.uuid), "created_at": .column(.timestamp), "config_version": .column(.text),
        "idempotency_key": .column(.text, nullable: true), "request": .document(containmentIndexes: ["metadata"]),
        "metadata": .alias("request.metadata"), "template": .alias("request.template"),
    ])
}

/// The order of an audit query: by `field`, then by id in the same direction (a total, stable order).
public struct AuditSort: Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var descending: Bool

    public init(field: String, descending: Bool) {
        self.field = field
        self.descending = descending
    }

    public var description: String { "\(field) \(descending ? "descending" : "ascending")" }
}

/// One audit query: which rows of one tenant's collection, in which order, from where, how many.
public struct AuditQuery: Sendable {
    public static let defaultLimit = 100
    public static let maximumLimit = 1000
    public static let requestKeys = ["collection", "filter", "sort", "limit", "cursor"]

    public var collection: AuditCollection
    public var filter: SchemaFilter
    public var sort: AuditSort
    public var limit: Int
    /// Where the previous page ended (nil: from the start).
    public var cursor: AuditCursor?
    /// Whose rows: set by the server, never by the request.
    public var tenant: String

    /// - Precondition: `filter` was parsed against `collection.schema`, `sort.field` is sortable, `limit`
    ///   is within 1…`maximumLimit`, and `cursor` (if any) belongs to this collection and sort.
    public init(
        collection: AuditCollection, filter: SchemaFilter, sort: AuditSort, limit: Int = defaultLimit,
        cursor: AuditCursor? = nil, tenant: String
    ) {
        precondition(filter.schema == collection.schema && collection.sortableFields.contains(sort.field))
        precondition((1...Self.maximumLimit).contains(limit))
        precondition(cursor.map { $0.collection == collection && $0.sort == sort } ?? true)
        self.collection = collection
        self.filter = filter
        self.sort = sort
        self.limit = limit
        self.cursor = cursor
        self.tenant = tenant
    }

    /// Reads a request body `{"collection", "filter", "sort": {"field": 1|-1}, "limit", "cursor"}`.
    /// Every problem is reported, each at the JSON Pointer of the part of the body at fault
    /// (`/filter/outcome/$nee`); a filter reports its first problem.
    public static func parse(_ body: JSONValue, tenant: String) throws(AuditRequestInvalid) -> AuditQuery {
        guard case .object(let members) = body else {
            throw AuditRequestInvalid(errors: [FieldError(field: "", message: "the body must be a JSON object, not \(body.typeName)")])
        }
        var errors: [FieldError] = []
        for key in members.keys.sorted() where !requestKeys.contains(key) {
            errors.append(FieldError(field: pointer(key), message: "unknown field; expected \(requestKeys.joined(separator: ", "))"))
        }
        let collections = AuditCollection.allCases.map(\.rawValue).joined(separator: ", ")
        var collection: AuditCollection?
        switch members["collection"] {
        case .string(let name)?:
            collection = AuditCollection(rawValue: name)
            if collection == nil {
                errors.append(FieldError(field: "/collection", message: "unknown collection '\(name)'; expected \(collections)"))
            }
        case nil, .null?:
            errors.append(FieldError(field: "/collection", message: "required: one of \(collections)"))
        case let other?:
            errors.append(FieldError(field: "/collection", message: "must be a string (one of \(collections)), not \(other.typeName)"))
        }
        var limit = defaultLimit
        switch members["limit"] {
        case nil, .null?: break
        case .integer(let value)? where (1...Int64(maximumLimit)).contains(value): limit = Int(value)
        default: errors.append(FieldError(field: "/limit", message: "must be a whole number from 1 to \(maximumLimit)"))
        }
        var cursor: AuditCursor?
        switch members["cursor"] {
        case nil, .null?: break
        case .string(let token)?:
            cursor = AuditCursor(token: token)
            if cursor == nil { errors.append(FieldError(field: "/cursor", message: "is not a cursor this API returned")) }
        case let other?:
            errors.append(FieldError(field: "/cursor", message: "must be a string this API returned, not \(other.typeName)"))
        }
        guard let collection else { throw AuditRequestInvalid(errors: errors) }

        var filter: SchemaFilter?
        do {
            filter = try SchemaFilter(members["filter"].flatMap { $0 == .null ? nil : $0 } ?? .object([:]), schema: collection.schema)
        } catch {
            errors.append(FieldError(field: error.jsonPointer(under: "/filter"), message: error.message))
        }
        var sort = collection.defaultSort
        do {
            sort = try parseSort(members["sort"], collection) ?? sort
        } catch {
            errors.append(contentsOf: error.errors)
        }
        if let given = cursor, given.collection != collection || given.sort != sort {
            errors.append(FieldError(
                field: "/cursor",
                message: "was returned for \(given.collection.rawValue) sorted by \(given.sort); repeat that query's "
                    + "collection and sort with it, or start again without a cursor"))
        }
        guard errors.isEmpty, let filter else { throw AuditRequestInvalid(errors: errors) }
        return AuditQuery(collection: collection, filter: filter, sort: sort, limit: limit, cursor: cursor, tenant: tenant)
    }

    static func parseSort(_ value: JSONValue?, _ collection: AuditCollection) throws(AuditRequestInvalid) -> AuditSort? {
        let sortable = collection.sortableFields
        switch value {
        case nil, .null?:
            return nil
        case .object(let members)? where members.count == 1:
            let (field, direction) = members.first!
            var errors: [FieldError] = []
            if !sortable.contains(where: { $0.utf8.elementsEqual(field.utf8) }) {
                let known = collection.schema.fields[field] != nil
                errors.append(FieldError(
                    field: pointer("sort", field),
                    message: (known ? "\(collection.rawValue) can't be sorted by '\(field)'" : "unknown field '\(field)'")
                        + "; sortable fields of \(collection.rawValue) are \(sortable.joined(separator: ", "))"))
            }
            var descending = false
            switch direction {
            case .integer(1): descending = false
            case .integer(-1): descending = true
            default: errors.append(FieldError(field: pointer("sort", field), message: "must be 1 (ascending) or -1 (descending)"))
            }
            guard errors.isEmpty else { throw AuditRequestInvalid(errors: errors) }
            return AuditSort(field: field, descending: descending)
        default:
            throw AuditRequestInvalid(errors: [FieldError(
                field: "/sort", message: "must be an object with one field, such as {\"\(collection.defaultSort.field)\": -1}")])
        }
    }

    /// A JSON Pointer (RFC 6901) to the given keys.
    static func pointer(_ keys: String...) -> String {
        JSONPointer.string(keys)
    }

    /// The statement this query runs: `$1` is the tenant, then the filter's parameters, then the
    /// cursor's; one row more than `limit` is asked for, to know whether there is a next page.
    public func statement() -> SQLFragment {
        let table = collection.rawValue
        let fragment = filter.sql(firstParameter: 2)
        var parameters = [tenant] + fragment.parameters
        func placeholder(_ value: JSONValue, _ type: ColumnType) -> String {
            parameters.append(value.stringValue ?? JSONWriter.string(value))
            return "$\(parameters.count)::\(Self.sqlType(type))"
        }
        let direction = sort.descending ? "DESC" : "ASC"
        let order = sort.field == "id" ? "id \(direction)" : "\(sort.field) \(direction), id \(direction)"
        var conditions = ["tenant = $1", fragment.sql]
        if let cursor {
            let comparison = sort.descending ? "<" : ">"
            let sortType = collection.schema.columns.first { $0.name == sort.field }!.type
            if sort.field == "id" {
                conditions.append("id \(comparison) \(placeholder(cursor.id, collection.idType))")
            } else {
                conditions.append(
                    "(\(sort.field), id) \(comparison) (\(placeholder(cursor.value, sortType)), \(placeholder(cursor.id, collection.idType)))")
            }
        }
        let columns = collection.fieldOrder.map { name -> String in
            switch collection.schema.fields[name] {
            case .column(.timestamp, _)?: "(extract(epoch FROM \(name)) * 1000000)::int8"
            case .column(.integer, _)?: "\(name)::int8"
            case .document?: "\(name)::text"
            default: name
            }
        }
        let sql = """
            SELECT \(columns.joined(separator: ", ")) FROM \(table)
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY \(order) LIMIT \(limit + 1)
            """
        return SQLFragment(sql: sql, parameters: parameters)
    }

    static func sqlType(_ type: ColumnType) -> String {
        switch type {
        case .text: "text"
        case .integer: "int8"
        case .double: "float8"
        case .timestamp: "timestamptz"
        case .uuid: "uuid"
        }
    }
}

/// Everything wrong with an audit request, each at a JSON Pointer into its body.
public struct AuditRequestInvalid: Error, Sendable, Hashable, CustomStringConvertible {
    public var errors: [FieldError]

    public init(errors: [FieldError]) { self.errors = errors }

    public var description: String {
        errors.map { "\($0.field.isEmpty ? "(body)" : $0.field): \($0.message)" }.joined(separator: "; ")
    }
}

/// The query ran out of its statement timeout: PostgreSQL cancelled it.
public struct AuditQueryTimedOut: Error, Sendable, Hashable, CustomStringConvertible {
    public var limit: Duration

    public init(limit: Duration) { self.limit = limit }

    public var description: String {
        "the audit query did not finish within \(limit): narrow it with an indexed field "
            + "(channel, outcome or status with a time range) or a smaller time range"
    }
}

/// One page of an audit query: the rows as row documents (`FilterSchema`), and where the next page
/// starts when there is one.
public struct AuditPage: Sendable, Hashable {
    public var items: [JSONValue]
    public var nextCursor: AuditCursor?
}

/// Where a page ended: the last row's sort value and id, for one collection and sort. Its token is
/// opaque to clients (base64url of a small JSON document).
public struct AuditCursor: Sendable, Hashable {
    public var collection: AuditCollection
    public var sort: AuditSort
    /// The last row's sort field and id, as its row document spells them.
    public var value: JSONValue
    public var id: JSONValue

    public init(collection: AuditCollection, sort: AuditSort, value: JSONValue, id: JSONValue) {
        self.collection = collection
        self.sort = sort
        self.value = value
        self.id = id
    }

    public var token: String {
        let document: JSONValue = [
            "c": .string(collection.rawValue), "s": .string(sort.field), "d": .integer(sort.descending ? -1 : 1),
            "v": value, "i": id,
        ]
        return Base64URL.encode(Array(JSONWriter.string(document).utf8))
    }

    /// Reads a token; nil unless it is one `token` wrote (the values must also suit their columns,
    /// since they are bound as such).
    public init?(token: String) {
        guard token.count <= 2048 else { return nil }
        guard let data = Base64URL.decode(token),
            case .object(let members)? = try? JSONDecoder().decode(JSONValue.self, from: data),
            let collection = members["c"]?.stringValue.flatMap(AuditCollection.init(rawValue:)),
            let field = members["s"]?.stringValue, collection.sortableFields.contains(field),
            let direction = members["d"], direction == .integer(1) || direction == .integer(-1),
            let value = members["v"], let id = members["i"],
            let type = collection.schema.columns.first(where: { $0.name == field })?.type,
            Self.suits(value, type), Self.suits(id, collection.idType)
        else { return nil }
        self.init(collection: collection, sort: AuditSort(field: field, descending: direction == .integer(-1)), value: value, id: id)
    }

    /// Whether `value` is a row-document value of a column of `type`.
    static func suits(_ value: JSONValue, _ type: ColumnType) -> Bool {
        switch (type, value) {
        case (.integer, .integer), (.double, .double), (.double, .integer): return true
        case (.text, .string(let text)): return !text.unicodeScalars.contains("\0")
        case (.timestamp, .string(let text)): return CanonicalTimestamp.microseconds(parsing: text) != nil
        case (.uuid, .string(let text)): return UUID(uuidString: text) != nil
        default: return false
        }
    }
}

/// Runs audit queries: read-only, bounded by a statement timeout, always within one tenant.
public struct AuditStore: Sendable {
    public static let defaultStatementTimeout: Duration = .seconds(5)

    public let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// One page of `query`. Throws `AuditQueryTimedOut` when PostgreSQL cancels it after
    /// `statementTimeout`; other failures are the database's (`StoreFailure` describes them).
    public func run(_ query: AuditQuery, statementTimeout: Duration = defaultStatementTimeout) async throws -> AuditPage {
        let statement = query.statement()
        var bindings = PostgresBindings()
        for parameter in statement.parameters { bindings.append(parameter) }
        let milliseconds = String(max(1, statementTimeout.milliseconds))
        let collection = query.collection
        let logger = logger
        var items: [JSONValue]
        do {
            items = try await client.withTransaction(logger: logger) { connection in
                // Read-only whatever the statement says, and bounded: SET LOCAL ends with the transaction.
                try await connection.query("SET TRANSACTION READ ONLY", logger: logger)
                try await connection.query("SELECT set_config('statement_timeout', \(milliseconds), true)", logger: logger)
                var items: [JSONValue] = []
                for try await row in try await connection.query(
                    PostgresQuery(unsafeSQL: statement.sql, binds: bindings), logger: logger)
                {
                    items.append(try Self.document(row.makeRandomAccess(), collection))
                }
                return items
            }
        } catch {
            let underlying = Self.unwrap(error)
            if let psql = underlying as? PSQLError, psql.serverInfo?[.sqlState] == "57014" {
                throw AuditQueryTimedOut(limit: statementTimeout)
            }
            throw underlying
        }
        var next: AuditCursor?
        if items.count > query.limit {
            items.removeLast(items.count - query.limit)
            if let last = items.last, let value = last[query.sort.field], let id = last["id"] {
                next = AuditCursor(collection: collection, sort: query.sort, value: value, id: id)
            }
        }
        return AuditPage(items: items, nextCursor: next)
    }

    /// The error inside a transaction's wrapper, so callers classify PostgreSQL's own error.
    static func unwrap(_ error: any Error) -> any Error {
        guard let wrapped = error as? PostgresTransactionError else { return error }
        return wrapped.closureError ?? wrapped.beginError ?? wrapped.commitError ?? error
    }

    /// The row document of a row selected by `AuditQuery.statement` (NULL columns are left out).
    static func document(_ row: PostgresRandomAccessRow, _ collection: AuditCollection) throws -> JSONValue {
        var members: [String: JSONValue] = [:]
        for (index, name) in collection.fieldOrder.enumerated() {
            let cell = row[index]
            let value: JSONValue?
            switch collection.schema.fields[name] {
            case .column(.text, _)?: value = try cell.decode(String?.self).map(JSONValue.string)
            case .column(.integer, _)?: value = try cell.decode(Int64?.self).map(JSONValue.integer)
            case .column(.double, _)?: value = try cell.decode(Double?.self).map(JSONValue.double)
            case .column(.uuid, _)?: value = try cell.decode(UUID?.self).map { .string($0.lowercasedString) }
            case .column(.timestamp, _)?:
                value = try cell.decode(Int64?.self).map { .string(CanonicalTimestamp.string(microseconds: $0)) }
            case .document?:
                value = try cell.decode(String?.self).map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
            case .alias?, nil:
                value = nil
            }
            if let value { members[name] = value }
        }
        return .object(members)
    }
}
