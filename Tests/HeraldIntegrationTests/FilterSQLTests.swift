import Foundation
import HeraldCore
import HeraldFilter
import PostgresNIO
import Testing

/// The filter language's key property, against a real PostgreSQL: for every filter, the rows its SQL
/// selects are exactly the documents `Filter.matches` accepts in memory.
@Suite(.serialized)
struct FilterSQLTests {
    /// Stored with `JSONEncoder` then `::jsonb`, as `NotificationStore` does.
    static let documents: [(Int, JSONValue)] = [
        (1, [
            "channel": "sms", "to": ["phone": "+15550001", "email": "a@example.com"], "priority": 5, "amount": 10.5,
            "tags": ["urgent", "billing"],
            "data": ["items": [["sku": "A1", "qty": 2], ["sku": "B2", "qty": 1]], "country": "DE"], "active": true,
        ]),
        (2, [
            "channel": "email", "to": ["email": "Bob@Example.com"], "priority": 1, "amount": 10, "tags": ["billing"],
            "data": ["items": [["sku": "C3", "qty": 5]], "country": "FR"], "active": false, "note": .null,
        ]),
        (3, [
            "channel": "webhook", "priority": 10.0, "amount": -3, "tags": [], "data": ["country": "de"],
            "note": "ünïcode ÉCOLE", "scores": [1, 5.5, [7, 8], "9"],
        ]),
        (4, [
            "channel": "sms", "to": ["phone": "+15550002"], "priority": "high", "tags": "urgent", "data": ["items": []],
            "note": "e\u{301}cole",
        ]),
        (5, [
            "channel": "Email", "priority": .null, "amount": 1e20, "tags": ["URGENT", .null],
            "nested": ["a": ["b": ["c": [1, 2, 3]]]], "note": "\u{E9}cole",
        ]),
        (6, [:]),
        (7, [
            "channel": "push", "priority": 7, "amount": .integer(Int64.max), "tags": [["urgent"], "x"],
            "data": ["items": ["0": ["sku": "obj-key"]]],
            "weird": ["-1": "neg", " 1": "space", "01": "zero-one"], "arr": ["a", "b", "c"],
        ]),
        (8, [
            "channel": "sms\n", "priority": 0.5, "amount": 0.1, "tags": ["a.b"], "to": ["phone": .null],
            "data": ["items": [["sku": "A1", "qty": 2.0]], "meta": ["k": [1, 2]]],
        ]),
        (9, [
            "we\"ird'; DROP TABLE filter_docs; --": ["k\\ey": "'; DROP TABLE filter_docs; -- \" \\"],
            "channel": "o'brien", "priority": -0.0, "amount": 1e-7, "tags": ["$in", "{}"],
        ]),
        (10, [
            "big": .double(1_152_921_504_606_846_976), "bigint": 1_152_921_504_606_846_990,
            "neg": .double(-9_223_372_036_854_775_808), "min": .integer(Int64.min), "amount": 9_007_199_254_740_993,
            "scores": [.double(9_007_199_254_740_994), 3],
        ]),
    ]

    static let filters: [String] = [
        #"{"channel": "sms"}"#,
        #"{"channel": {"$eq": "sms"}}"#,
        #"{"channel": {"$ne": "sms"}}"#,
        #"{"priority": 10}"#,
        #"{"priority": 0}"#,
        #"{"amount": 0.1}"#,
        #"{"amount": 1e-7}"#,
        #"{"amount": 100000000000000000000}"#,
        #"{"active": true}"#,
        #"{"active": {"$ne": true}}"#,
        #"{"data.items.0.qty": 2}"#,
        #"{"priority": {"$gt": 5}}"#,
        #"{"priority": {"$gte": 5}}"#,
        #"{"priority": {"$lt": 1}}"#,
        #"{"priority": {"$lte": 1}}"#,
        #"{"priority": {"$gt": 1, "$lt": 10}}"#,
        #"{"priority": {"$gte": 0.5, "$lte": 5}}"#,
        #"{"priority": {"$gte": -0.0, "$lte": 0}}"#,
        #"{"amount": {"$gt": 10}}"#,
        #"{"amount": {"$gt": -3.5}}"#,
        #"{"amount": {"$gte": 9223372036854775807}}"#,
        #"{"amount": {"$lt": 9.2233720368547758e18}}"#,
        #"{"amount": {"$in": [10.0, -3]}}"#,
        #"{"big": {"$gt": 1152921504606846990}}"#,
        #"{"big": 1152921504606847000}"#,
        #"{"big": 1152921504606846976}"#,
        #"{"bigint": {"$lt": 1.152921504606847e18}}"#,
        #"{"neg": {"$lt": -9223372036854775808}}"#,
        #"{"min": {"$gt": -9.223372036854775808e18}}"#,
        #"{"amount": {"$gt": 9007199254740992.0}}"#,
        #"{"amount": 9007199254740992.0}"#,
        #"{"scores": {"$gte": 9007199254740993}}"#,
        #"{"priority": {"$gt": "a"}}"#,
        #"{"channel": {"$lt": "sms"}}"#,
        #"{"channel": {"$gte": "sms"}}"#,
        #"{"channel": {"$lt": "e"}}"#,
        #"{"channel": {"$gt": "Email", "$lt": "email"}}"#,
        #"{"note": {"$gt": "e"}}"#,
        #"{"note": {"$lt": "f"}}"#,
        #"{"note": {"$lte": "\u00e9cole"}}"#,
        #"{"note": {"$gt": "\u00e9cole", "$lte": "e\u0301cole"}}"#,
        #"{"note": {"$gt": "e\u0301cole", "$lte": "\u00e9cole"}}"#,
        #"{"note": {"$nin": ["\u00e9cole", "x"]}}"#,
        #"{"note": {"$in": ["e\u0301cole", "\u00e9cole"]}}"#,
        #"{"tags": "urgent"}"#,
        #"{"tags": ["urgent"]}"#,
        #"{"tags": ["urgent", "billing"]}"#,
        #"{"tags": ["billing", "urgent"]}"#,
        #"{"tags": []}"#,
        #"{"tags": {"$in": ["billing", "x"]}}"#,
        #"{"tags": {"$nin": ["billing", "x"]}}"#,
        #"{"tags": {"$ne": "urgent"}}"#,
        #"{"tags": {"$nin": [null]}}"#,
        #"{"tags": {"$in": ["$in", "{}"]}}"#,
        #"{"tags.0": {"$exists": true}}"#,
        #"{"scores": {"$gt": 6}}"#,
        #"{"scores": {"$gte": 5.5}}"#,
        #"{"scores": [7, 8]}"#,
        #"{"scores": "9"}"#,
        #"{"scores": 9}"#,
        #"{"scores.2.0": 7}"#,
        #"{"scores.2": [7, 8.0]}"#,
        #"{"scores.3": {"$gt": "8"}}"#,
        #"{"nested.a.b.c": 2}"#,
        #"{"nested.a.b.c.2": 3}"#,
        #"{"tags": null}"#,
        #"{"note": null}"#,
        #"{"note": {"$ne": null}}"#,
        #"{"note": {"$exists": true}}"#,
        #"{"note": {"$exists": false}}"#,
        #"{"to.phone": {"$exists": true}}"#,
        #"{"to.phone": null}"#,
        #"{"priority": {"$in": [null, 7]}}"#,
        #"{"priority": {"$nin": [null, 7]}}"#,
        #"{"priority": {"$not": {"$exists": true}}}"#,
        #"{"channel": {"$in": []}}"#,
        #"{"channel": {"$nin": []}}"#,
        #"{"data.items.0.sku": "A1"}"#,
        #"{"data.items.0.sku": "obj-key"}"#,
        #"{"data.items.1.qty": {"$lt": 2}}"#,
        #"{"data.items.sku": "A1"}"#,
        #"{"channel.0": {"$exists": false}}"#,
        #"{"to.phone.0": null}"#,
        #"{"weird.-1": "neg"}"#,
        #"{"weird. 1": "space"}"#,
        #"{"weird. 1": {"$exists": true}}"#,
        #"{"weird.01": "zero-one"}"#,
        #"{"arr.-1": "c"}"#,
        #"{"arr. 1": "b"}"#,
        #"{"arr.01": "b"}"#,
        #"{"arr.+1": "b"}"#,
        #"{"arr.-0": "a"}"#,
        #"{"arr.1 ": "b"}"#,
        #"{"arr.99999999999": "a"}"#,
        #"{"data": {"country": "DE", "items": [{"sku": "A1", "qty": 2}, {"qty": 1.0, "sku": "B2"}]}}"#,
        #"{"data": {"country": "DE"}}"#,
        #"{"data.meta": {"k": [1.0, 2]}}"#,
        #"{"to": {"phone": "+15550002"}}"#,
        #"{"to": {"$in": [{"phone": "+15550002"}, {"email": "Bob@Example.com"}]}}"#,
        #"{"to.phone": {"$regex": "^\\+1555"}}"#,
        #"{"to.email": {"$regex": "example\\.com$", "$options": "i"}}"#,
        #"{"to.email": {"$regex": "example\\.com$"}}"#,
        #"{"data.country": {"$regex": "^de$", "$options": "i"}}"#,
        #"{"note": {"$regex": "école"}}"#,
        #"{"note": {"$regex": "ÉCOLE", "$options": "i"}}"#,
        #"{"note": {"$regex": "^e.cole$"}}"#,
        #"{"note": {"$regex": "^[^a-z]"}}"#,
        #"{"note": {"$regex": "(?:ün|xx)ï"}}"#,
        #"{"note": {"$regex": "^\\w+\\s\\W"}}"#,
        #"{"note": {"$regex": "[\u0300-\u036f]"}}"#,
        #"{"note": {"$regex": "[̀-ͯ]"}}"#,
        #"{"channel": {"$regex": "^sms$"}}"#,
        #"{"channel": {"$regex": "^sms\\n$"}}"#,
        #"{"channel": {"$regex": "\\s$"}}"#,
        #"{"channel": {"$regex": "^o'b"}}"#,
        #"{"channel": {"$regex": "^(?:e|E)m(a|x)il$"}}"#,
        #"{"channel": {"$regex": "^[a-z]{3,4}$", "$options": "i"}}"#,
        #"{"channel": {"$regex": "^[^\\d\\s]+$"}}"#,
        #"{"channel": {"$regex": "^(s|w)?[a-z]+[^a-z]?$"}}"#,
        #"{"channel": {"$regex": ""}}"#,
        #"{"tags": {"$regex": "^urg"}}"#,
        #"{"tags": {"$regex": "^urg", "$options": "i"}}"#,
        #"{"tags": {"$regex": "^\\$|\\{"}}"#,
        #"{"priority": {"$regex": "5"}}"#,
        #"{"channel": {"$not": {"$regex": "^s"}}}"#,
        #"{"$or": [{"channel": "sms"}, {"priority": {"$gt": 5}}]}"#,
        #"{"$and": [{"channel": "sms"}, {"to.phone": {"$regex": "2$"}}]}"#,
        #"{"$nor": [{"channel": "sms"}, {"priority": {"$gt": 5}}]}"#,
        #"{"priority": {"$not": {"$gt": 5}}}"#,
        #"{"to": {"$exists": true}, "channel": "sms"}"#,
        #"{}"#,
        #"{"$or": [{"$and": [{"tags": "billing"}, {"amount": {"$lte": 10}}]}, {"note": {"$regex": "cole$"}}]}"#,
        #"{"$or": [{"note": {"$exists": false}}, {"note": null}]}"#,
        #"{"$nor": [{"tags": {"$in": ["x"]}}], "priority": {"$not": {"$lt": 5, "$gt": 0}}}"#,
        #"{"we\"ird'; DROP TABLE filter_docs; --.k\\ey": "'; DROP TABLE filter_docs; -- \" \\"}"#,
        #"{"we\"ird'; DROP TABLE filter_docs; --": {"k\\ey": "'; DROP TABLE filter_docs; -- \" \\"}}"#,
    ]

    /// Creates a uniquely named table with the fixture documents, runs `body`, drops the table.
    static func withFixtureTable(
        _ body: @escaping @Sendable (PostgresClient, String) async throws -> Void
    ) async throws {
        try await TestServers.withDatabase { client in
            let table = "filter_docs_\(UUID().uuidString.prefix(8).lowercased())"
            _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (id int PRIMARY KEY, doc jsonb NOT NULL)"))
            do {
                for (id, document) in documents {
                    let json = String(decoding: try JSONEncoder().encode(document), as: UTF8.self)
                    var bindings = PostgresBindings()
                    bindings.append(Int32(id))
                    bindings.append(json)
                    _ = try await client.query(
                        PostgresQuery(unsafeSQL: "INSERT INTO \(table) (id, doc) VALUES ($1, $2::jsonb)", binds: bindings))
                }
                try await body(client, table)
            } catch {
                _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(table)"))
                throw error
            }
            _ = try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"))
        }
    }

    /// For each document: the filter's value in SQL (asserting it is never NULL).
    static func sqlResults(_ filter: Filter, client: PostgresClient, table: String, firstParameter: Int = 1,
                           leading: [String] = []) async throws -> [Int: Bool?] {
        let fragment = filter.sql(column: "t.doc", firstParameter: firstParameter)
        var bindings = PostgresBindings()
        for value in leading { bindings.append(value) }
        for parameter in fragment.parameters { bindings.append(parameter) }
        let guardClause = leading.indices.map { "$\($0 + 1)::text IS NOT NULL AND " }.joined()
        let sql = "SELECT t.id, \(guardClause)(\(fragment.sql)) FROM \(table) AS t ORDER BY t.id"
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings))
        var results: [Int: Bool?] = [:]
        for try await (id, matched) in rows.decode((Int32, Bool?).self) {
            results[Int(id)] = matched
        }
        return results
    }

    /// The ids SQL selects equal the ids matched in memory, and SQL never yields NULL.
    static func expectAgreement(
        _ filter: Filter, client: PostgresClient, table: String, label: String,
        firstParameter: Int = 1, leading: [String] = []
    ) async throws {
        let sql = try await sqlResults(
            filter, client: client, table: table, firstParameter: firstParameter, leading: leading)
        let sqlIDs = sql.filter { $0.value == true }.map(\.key).sorted()
        let memoryIDs = documents.filter { filter.matches($0.1) }.map(\.0).sorted()
        #expect(sql.count == documents.count && sql.values.allSatisfy { $0 != nil }, "NULL in SQL for \(label)")
        #expect(sqlIDs == memoryIDs, "\(label)\nSQL: \(filter.sql(column: "t.doc").sql)")
    }

    static func memoryResults(_ filter: Filter) -> [Int: Bool?] {
        Dictionary(uniqueKeysWithValues: documents.map { ($0.0, Optional(filter.matches($0.1))) })
    }

    @Test func sqlSelectsExactlyWhatMatchesInMemory() async throws {
        try await Self.withFixtureTable { client, table in
            var compared = 0
            for json in Self.filters {
                let filter = try Filter(json: json)
                try await Self.expectAgreement(filter, client: client, table: table, label: json)
                compared += 1
            }
            #expect(compared == Self.filters.count)
            print("FilterSQLTests: \(compared) filters × \(Self.documents.count) documents agree in SQL and in memory")
        }
    }

    @Test func placeholdersCanStartLater() async throws {
        try await Self.withFixtureTable { client, table in
            for json in [#"{"tags": {"$in": ["billing", "x"]}, "priority": {"$gt": 1}}"#, #"{"note": {"$regex": "cole$"}}"#] {
                let filter = try Filter(json: json)
                try await Self.expectAgreement(
                    filter, client: client, table: table, label: json, firstParameter: 3, leading: ["a", "b"])
            }
        }
    }

    @Test func hostileTextTravelsAsData() async throws {
        try await Self.withFixtureTable { client, table in
            let hostile = "'; DROP TABLE \(table); -- \" \\"
            let key = "we\"ird'; DROP TABLE filter_docs; --"
            let filters: [JSONValue] = [
                .object([key + ".k\\ey": .string("'; DROP TABLE filter_docs; -- \" \\")]),
                .object(["channel": .object(["$in": [.string(hostile), "o'brien"]])]),
                .object(["channel": .object(["$regex": .string("^o'|" + hostile.replacingOccurrences(of: "\\", with: "\\\\"))])]),
                .object([hostile: .string(hostile)]),
                .object([hostile + "." + hostile: .object(["$ne": .string(hostile)])]),
                .object(["channel": .object(["$gt": .string(hostile)])]),
            ]
            for document in filters {
                try await Self.expectAgreement(try Filter(document), client: client, table: table, label: "\(document)")
            }
            // The hostile filters matched what they should, and the table is intact.
            let first = try await Self.sqlResults(try Filter(filters[0]), client: client, table: table)
            #expect(first.filter { $0.value == true }.map(\.key) == [9])
            let count = try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int4 FROM \(table)"))
            for try await n in count.decode(Int32.self) { #expect(Int(n) == Self.documents.count) }
        }
    }
    // MARK: Randomized differential tests (fixed seeds, so a failure reproduces)

    /// Random filters (operators, literals and paths drawn from pools that hit the fixtures) agree too.
    @Test func randomFiltersAgree() async throws {
        try await Self.withFixtureTable { client, table in
            var random = SplitMix64(seed: 0x4845_5241_4C44)
            var compared = 0
            var selective = 0  // selected some documents but not all
            for _ in 0..<800 {
                let document = RandomFilters.filter(depth: 2, &random)
                let filter: Filter
                do { filter = try Filter(document) } catch { continue }  // e.g. an $in with no literals
                try await Self.expectAgreement(filter, client: client, table: table, label: JSONWriter.string(document))
                compared += 1
                let matched = Self.documents.count(where: { filter.matches($0.1) })
                if matched > 0, matched < Self.documents.count { selective += 1 }
            }
            #expect(compared > 600)
            #expect(selective > compared / 3)
            print("FilterSQLTests: \(compared) random filters agree in SQL and in memory (\(selective) selective)")
        }
    }

    /// Random patterns of the supported subset, in memory vs PostgreSQL's `~` on the emitted pattern.
    @Test func randomRegexesAgree() async throws {
        try await TestServers.withDatabase { client in
            var random = SplitMix64(seed: 0x5245_4745_58)
            var compared = 0
            var matched = 0
            for _ in 0..<300 {
                let pattern = RandomRegex.pattern(depth: 3, &random)
                let caseInsensitive = random.next() % 3 == 0
                let regex = try FilterRegex(pattern: pattern, caseInsensitive: caseInsensitive)
                let subjects = (0..<24).map { _ in RandomRegex.subject(&random) }
                var bindings = PostgresBindings()
                bindings.append(regex.postgresPattern)
                bindings.append(subjects)
                let rows = try await client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT u.n::int4, (u.s COLLATE "C") ~ $1::text
                            FROM unnest($2::text[]) WITH ORDINALITY AS u(s, n) ORDER BY u.n
                            """,
                        binds: bindings))
                var results: [Bool] = []
                for try await (_, matched) in rows.decode((Int32, Bool).self) { results.append(matched) }
                let memory = subjects.map { regex.matches($0) }
                #expect(results == memory, "\(regex) → \(regex.postgresPattern) on \(subjects)")
                compared += subjects.count
                matched += memory.count(where: { $0 })
            }
            #expect(matched > compared / 10 && matched < compared * 9 / 10)
            print("FilterSQLTests: \(compared) random regex matches agree in SQL and in memory (\(matched) true)")
        }
    }
}

extension FilterSQLTests {
    enum RandomFilters {
        static let paths = [
            "channel", "priority", "amount", "tags", "note", "to.phone", "to", "data", "data.items.0.qty",
            "data.items.0.sku", "scores", "scores.2", "arr.1", "missing", "nested.a.b.c", "active", "tags.0",
            "big", "bigint", "neg", "min",
            "channel.0", "to.phone.0", "weird.-1", "arr.-1",
        ]
        static let literals: [JSONValue] = [
            .null, true, false, 0, 1, 2, 5, 7, 10, 10.5, 0.5, 0.1, -3, 1e20, .integer(Int64.max), "sms", "urgent",
            "billing", "a", "e", "x", "high", "Email", "+15550002", "A1", [], ["urgent"], [7, 8], [1, 2, 3],
            ["phone": "+15550002"], "o'brien",
        ]
        static let orderable: [JSONValue] = [
            0, 1, 2, 5, 7, 10, 10.5, 0.5, -3, 1e20, "sms", "e", "a", "high", "Email", "9",
            1_152_921_504_606_846_990, 1_152_921_504_606_847_000, .double(1_152_921_504_606_846_976),
            .integer(Int64.min), .double(-9_223_372_036_854_775_808), 9_007_199_254_740_993,
        ]
        static let patterns = ["^s", "cole$", "x", "^[a-e]", "\\d", "^.{4}$", "a|b", "^$", "[^a-z]", "É"]

        static func pick<T>(_ values: [T], _ random: inout SplitMix64) -> T {
            values[Int(random.next() % UInt64(values.count))]
        }

        /// The values (and array elements) the fixtures hold at `path`: literals that select something.
        static func present(at path: String) -> [JSONValue] {
            FilterSQLTests.documents.flatMap { _, document -> [JSONValue] in
                guard let value = document.value(atPath: path) else { return [] }
                if case .array(let elements) = value { return [value] + elements }
                return [value]
            }
        }

        static func literal(_ path: String, _ random: inout SplitMix64) -> JSONValue {
            let here = present(at: path)
            return here.isEmpty || random.next() % 3 == 0 ? pick(literals, &random) : pick(here, &random)
        }

        static func orderableLiteral(_ path: String, _ random: inout SplitMix64) -> JSONValue {
            let here = present(at: path).filter {
                switch $0 {
                case .integer, .double, .string: true
                default: false
                }
            }
            return here.isEmpty || random.next() % 3 == 0 ? pick(orderable, &random) : pick(here, &random)
        }

        static func condition(_ path: String, depth: Int, _ random: inout SplitMix64) -> JSONValue {
            switch random.next() % 12 {
            case 0: return literal(path, &random)
            case 1: return ["$eq": literal(path, &random)]
            case 2: return ["$ne": literal(path, &random)]
            case 3: return [pick(["$gt", "$gte", "$lt", "$lte"], &random): orderableLiteral(path, &random)]
            case 4:
                return [
                    pick(["$gt", "$gte"], &random): orderableLiteral(path, &random),
                    pick(["$lt", "$lte"], &random): orderableLiteral(path, &random),
                ]
            case 5, 6:
                let count = Int(random.next() % 4)
                return [pick(["$in", "$nin"], &random): .array((0..<count).map { _ in literal(path, &random) })]
            case 7: return ["$exists": .bool(random.next() % 2 == 0)]
            case 8:
                var operators: [String: JSONValue] = ["$regex": .string(pick(patterns, &random))]
                if random.next() % 2 == 0 { operators["$options"] = "i" }
                return .object(operators)
            default:
                guard depth > 0 else { return ["$exists": true] }
                let inner = condition(path, depth: depth - 1, &random)
                if case .object(let members) = inner, members.keys.allSatisfy({ $0.hasPrefix("$") }) {
                    return ["$not": inner]
                }
                return ["$not": ["$eq": inner]]
            }
        }

        static func filter(depth: Int, _ random: inout SplitMix64) -> JSONValue {
            var members: [String: JSONValue] = [:]
            for _ in 0..<(random.next() % 4 == 0 ? 2 : 1) {
                if depth > 0, random.next() % 4 == 0 {
                    let count = 1 + Int(random.next() % 3)
                    members[pick(["$and", "$or", "$nor"], &random)] = .array(
                        (0..<count).map { _ in filter(depth: depth - 1, &random) })
                } else {
                    let path = pick(paths, &random)
                    members[path] = condition(path, depth: 1, &random)
                }
            }
            return .object(members)
        }
    }

    enum RandomRegex {
        static let alphabet = ["a", "b", "A", "B", "é", "É", "\n", " ", "1", "-", "_", "x", "\\.", "😀"]
        static let subjectAlphabet: [String] = ["a", "b", "A", "B", "é", "É", "\n", " ", "1", "-", "_", "x", ".", "😀", "e\u{301}"]

        static func atom(depth: Int, _ random: inout SplitMix64) -> String {
            switch random.next() % 14 {
            case 0: return "."
            case 1: return "[ab]"
            case 2: return "[^a1]"
            case 3: return "[a-c]"
            case 4: return RandomFilters.pick(["\\d", "\\w", "\\s", "\\W", "\\S", "\\D"], &random)
            case 5: return "[-é\\]x]"
            case 6, 7:
                guard depth > 0 else { return "a" }
                return RandomFilters.pick(["(", "(?:"], &random) + pattern(depth: depth - 1, &random) + ")"
            default: return RandomFilters.pick(alphabet, &random)
            }
        }

        static func pattern(depth: Int, _ random: inout SplitMix64) -> String {
            let branches = 1 + Int(random.next() % 2)
            return (0..<branches).map { _ in
                var branch = random.next() % 6 == 0 ? "^" : ""
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    branch += atom(depth: depth, &random)
                    branch += RandomFilters.pick(["", "", "", "*", "+", "?", "{2}", "{0,2}", "{1,}"], &random)
                }
                if random.next() % 6 == 0 { branch += "$" }
                return branch
            }.joined(separator: "|")
        }

        static func subject(_ random: inout SplitMix64) -> String {
            (0..<Int(random.next() % 7)).map { _ in RandomFilters.pick(subjectAlphabet, &random) }.joined()
        }
    }
}
