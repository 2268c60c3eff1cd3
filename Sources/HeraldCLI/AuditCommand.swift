import ArgumentParser
import Foundation
import HeraldCore
import HeraldStore
import Logging

/// `herald audit query`: the audit query (`POST /v1/audit/query`) straight from PostgreSQL, for operators.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Query notifications, deliveries and attempts with a filter.",
        subcommands: [AuditQueryCommand.self])
}

struct AuditQueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "One tenant's notifications, deliveries or attempts matching a filter (the routing rules' language).",
        discussion: """
            Example: herald audit query --collection attempts \\
                --filter '{"channel": "sms", "outcome": {"$ne": "success"}, "started_at": {"$gte": "2026-12-01T00:00:00Z"}}'
            """)

    @Option(help: "attempts, deliveries or notifications.")
    var collection: String

    @Option(help: "A filter as JSON (default {}: every row).")
    var filter: String = "{}"

    @Option(help: "FIELD:1 (ascending) or FIELD:-1 (descending); default newest first.")
    var sort: String?

    @Option(help: "At most this many rows (1 to 1000).")
    var limit: Int = AuditQuery.defaultLimit

    @Option(help: "Continue where a previous page ended (its next cursor).")
    var cursor: String?

    @Option(help: "Whose rows.")
    var tenant: String = "default"

    @Flag(help: "One JSON object per line instead of a table.")
    var json = false

    func run() async throws {
        let query = try AuditQuery.parse(try requestBody(), tenant: tenant)
        let page = try await withStore(role: "audit") { store in
            do {
                return try await AuditStore(client: store.client, logger: Logger(label: "herald.audit")).run(query)
            } catch let timeout as AuditQueryTimedOut {
                throw ValidationError(timeout.description)
            }
        }
        if json {
            for item in page.items { print(String(decoding: try JSONEncoder.sorted.encode(item), as: UTF8.self)) }
            if let next = page.nextCursor { FileHandle.standardError.write(Data("next cursor: \(next.token)\n".utf8)) }
            return
        }
        print(AuditTable.render(page.items, columns: query.collection.fieldOrder))
        print("\(page.items.count) row(s)" + (page.nextCursor.map { "; more with --cursor \($0.token)" } ?? ""))
    }

    /// The same body the API takes, so that both report problems alike (as JSON Pointers).
    func requestBody() throws -> JSONValue {
        var body: [String: JSONValue] = ["collection": .string(collection), "limit": .integer(Int64(limit))]
        do {
            body["filter"] = try JSONDecoder().decode(JSONValue.self, from: Data(filter.utf8))
        } catch {
            throw ValidationError("--filter is not valid JSON: \(error)")
        }
        if let sort {
            guard let colon = sort.lastIndex(of: ":"), let direction = Int64(sort[sort.index(after: colon)...]) else {
                throw ValidationError("--sort must be FIELD:1 or FIELD:-1, such as started_at:-1")
            }
            body["sort"] = .object([String(sort[..<colon]): .integer(direction)])
        }
        if let cursor { body["cursor"] = .string(cursor) }
        return .object(body)
    }
}

/// A plain-text table: a column per field that some row has, cells cut to 40 characters.
enum AuditTable {
    static func render(_ items: [JSONValue], columns: [String]) -> String {
        let present = columns.filter { name in items.contains { $0[name] != nil } }
        let rows = items.map { item in present.map { cell(item[$0]) } }
        let widths = present.indices.map { index in ([present[index]] + rows.map { $0[index] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            let padded = zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
            return String(padded.reversed().drop { $0 == " " }.reversed())
        }
        return ([line(present)] + rows.map(line)).joined(separator: "\n")
    }

    static func cell(_ value: JSONValue?) -> String {
        let text: String
        switch value {
        case nil: text = ""
        case .string(let string)?: text = string
        case let other?: text = (try? String(decoding: JSONEncoder.sorted.encode(other), as: UTF8.self)) ?? ""
        }
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > 40 ? String(flat.prefix(39)) + "…" : flat
    }
}
