import Foundation
import HeraldCore
import HeraldFilter
import Testing

/// Schema-bound filters: field resolution, literal binding and the SQL's shape (what PostgreSQL makes
/// of it is AuditQueryTests' job, against a real server).
struct SchemaFilterTests {
    static let schema = FilterSchema(name: "things", fields: [
        "id": .column(.integer), "name": .column(.text), "note": .column(.text, nullable: true),
        "count": .column(.integer, nullable: true), "ratio": .column(.double), "at": .column(.timestamp),
        "ref": .column(.uuid), "doc": .document(containmentIndexes: ["meta"]), "meta": .alias("doc.meta"),
    ])

    static func bind(_ json: String) throws -> SchemaFilter {
        try SchemaFilter(try JSONValue.parse(json), schema: schema)
    }

    // MARK: Binding

    /// (filter, JSON Pointer of the error under /filter, message)
    static let errors: [(String, String, String)] = [
        (#"{"tenant": "b"}"#, "/filter/tenant",
         "unknown field 'tenant'; the fields of things are at, count, doc.*, id, meta.*, name, note, ratio, ref"),
        (#"{"$or": [{"name": "a"}, {"nmae": "b"}]}"#, "/filter/$or/1/nmae",
         "unknown field 'nmae'; the fields of things are at, count, doc.*, id, meta.*, name, note, ratio, ref"),
        (#"{"name.first": "a"}"#, "/filter/name.first", "name is a text field and has no sub-fields"),
        (#"{"name": {"$nee": "a"}}"#, "/filter/name/$nee", "unknown operator '$nee'"),
        (#"{"name": 5}"#, "/filter/name", "name is a text field: compare it with a string (or null), not a number"),
        (#"{"count": {"$in": [1, "2"]}}"#, "/filter/count/$in/1",
         "count is an integer field: compare it with a number (or null), not a string"),
        (#"{"at": {"$gte": "2026-12-01"}}"#, "/filter/at/$gte",
         "at is a timestamp field: '2026-12-01' is not an RFC 3339 date-time such as 2026-12-01T00:00:00Z (years 1583 to 9999)"),
        (#"{"at": {"$not": {"$lt": 5}}}"#, "/filter/at/$not/$lt",
         "at is a timestamp field: compare it with an RFC 3339 date-time such as 2026-12-01T00:00:00Z (or null), not a number"),
        (#"{"ref": "nope"}"#, "/filter/ref", "ref is a uuid field: 'nope' is not a UUID"),
        (#"{"ratio": {"$gt": 9007199254740993}}"#, "/filter/ratio/$gt",
         "ratio is a double field: integers compared with it must be within ±2^53"),
        (#"{"count": {"$regex": "^1"}}"#, "/filter/count/$regex", "$regex applies to text fields; count is an integer field"),
        (#"{"name": ["a"]}"#, "/filter/name", "name is a text field: compare it with a string (or null), not an array"),
        (#"{"a/b~c": 1}"#, "/filter/a~1b~0c",
         "unknown field 'a/b~c'; the fields of things are at, count, doc.*, id, meta.*, name, note, ratio, ref"),
    ]

    @Test(arguments: errors)
    func errorsNameTheJSONPointer(_ json: String, _ pointer: String, _ message: String) throws {
        do {
            _ = try SchemaFilter(try JSONValue.parse(json), schema: Self.schema)
            Issue.record("\(json) was accepted")
        } catch let error as FilterError {
            #expect(error.jsonPointer(under: "/filter") == pointer, "\(json)")
            #expect(error.message == message, "\(json)")
        }
    }

    @Test func literalsTakeTheRowDocumentsSpellings() throws {
        let filter = try Self.bind(#"""
            {"at": {"$gte": "2026-12-01T02:00:00.1234567+02:00", "$lt": "2026-12-02T00:00:00Z"},
             "ref": {"$in": ["0190F5A2-0000-7000-8000-000000000001", null]}, "meta.plan": "pro", "name": "a"}
            """#)
        let expected = try Filter(json: #"""
            {"at": {"$gte": "2026-12-01T00:00:00.123457Z", "$lt": "2026-12-02T00:00:00.000000Z"},
             "ref": {"$in": ["0190f5a2-0000-7000-8000-000000000001", null]}, "doc.meta.plan": "pro", "name": "a"}
            """#)
        #expect(filter.filter == expected)
    }

    @Test func timestampsCompareAsInstantsInMemory() throws {
        let row: JSONValue = ["at": .string(CanonicalTimestamp.string(microseconds: 1_796_083_200_000_001))]
        #expect(CanonicalTimestamp.string(microseconds: 1_796_083_200_000_001) == "2026-12-01T00:00:00.000001Z")
        #expect(try Self.bind(#"{"at": {"$gt": "2026-12-01T01:00:00+01:00"}}"#).matches(row))
        #expect(try !Self.bind(#"{"at": {"$gt": "2026-12-01T00:00:00.000001Z"}}"#).matches(row))
        #expect(try Self.bind(#"{"at": "2026-11-30T19:00:00.000001-05:00"}"#).matches(row))
        #expect(try !Self.bind(#"{"at": {"$exists": false}}"#).matches(row))
    }

    // MARK: Canonical timestamps

    @Test func canonicalTimestamps() {
        let cases: [(String, String?)] = [
            ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00.000000Z"),
            ("2026-12-01t09:30:00.5z", "2026-12-01T09:30:00.500000Z"),
            ("2026-12-01T09:30:00.9999995Z", "2026-12-01T09:30:01.000000Z"),
            ("2026-12-01T09:30:00.12345649Z", "2026-12-01T09:30:00.123456Z"),
            ("2024-02-29T23:59:59.999999-01:00", "2024-03-01T00:59:59.999999Z"),
            ("1969-12-31T23:59:59.000001Z", "1969-12-31T23:59:59.000001Z"),
            ("1583-01-01T00:00:00Z", "1583-01-01T00:00:00.000000Z"), ("1600-02-29T12:00:00Z", "1600-02-29T12:00:00.000000Z"),
            ("1582-12-31T23:59:59Z", nil), ("0001-01-01T00:00:00Z", nil),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("2026-12-01", nil), ("2026-12-01T00:00:00.Z", nil), ("yesterday", nil), ("2026-02-30T00:00:00Z", nil),
        ]
        for (text, canonical) in cases {
            #expect(CanonicalTimestamp.microseconds(parsing: text).map(CanonicalTimestamp.string(microseconds:)) == canonical, "\(text)")
        }
        #expect(CanonicalTimestamp.string(microseconds: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(CanonicalTimestamp.string(microseconds: -1) == "1969-12-31T23:59:59.999999Z")
    }

    // MARK: SQL

    @Test func typedColumnsCompileNatively() throws {
        let fragment = try Self.bind(#"""
            {"name": "sms", "id": {"$gte": 5, "$lt": 7.5}, "at": {"$gte": "2026-12-01T00:00:00Z"}, "ratio": {"$lte": 2},
             "ref": "0190f5a2-0000-7000-8000-000000000001"}
            """#).sql(firstParameter: 2)
        #expect(fragment.sql == "((at >= $2::timestamptz) AND ((id >= $3::int8) AND (id < $4::numeric)) AND (name = $5::text)"
            + " AND (ratio <= $6::float8) AND (ref = $7::uuid))")
        #expect(fragment.parameters == ["2026-12-01T00:00:00.000000Z", "5", "7.5", "sms", "2", "0190f5a2-0000-7000-8000-000000000001"])
    }

    @Test func nullableColumnsAreGuarded() throws {
        #expect(try Self.bind(#"{"note": "x"}"#).sql().sql == "(note IS NOT NULL AND note = $1::text)")
        #expect(try Self.bind(#"{"note": null}"#).sql().sql == "(note IS NULL)")
        #expect(try Self.bind(#"{"note": {"$ne": null}}"#).sql().sql == "(NOT (note IS NULL))")
        #expect(try Self.bind(#"{"note": {"$exists": false}}"#).sql().sql == "(note IS NULL)")
        #expect(try Self.bind(#"{"count": {"$in": [null, 1, 2, 2.5]}}"#).sql().sql
            == "(count IS NULL OR (count IS NOT NULL AND count IN ($1::int8, $2::int8) OR count = $3::numeric))")
        #expect(try Self.bind(#"{"note": {"$regex": "^a", "$options": "i"}}"#).sql().sql
            == #"(note IS NOT NULL AND note COLLATE "C" ~ $1::text)"#)
        #expect(try Self.bind(#"{"note": {"$gt": "m"}}"#).sql().sql == #"(note IS NOT NULL AND note COLLATE "C" > $1::text)"#)
    }

    @Test func constantsForColumnsThatAreNeverNull() throws {
        #expect(try Self.bind(#"{"name": null}"#).sql().sql == "false")
        #expect(try Self.bind(#"{"name": {"$exists": true}}"#).sql().sql == "true")
        #expect(try Self.bind(#"{"name": {"$in": []}}"#).sql().sql == "false")
        #expect(try Self.bind(#"{"name": {"$nin": []}}"#).sql().sql == "(NOT false)")
    }

    @Test func documentsCompileOverTheirJSONBColumnWithAContainmentHint() throws {
        let fragment = try Self.bind(#"{"meta.plan": "pro"}"#).sql()
        #expect(fragment.sql.hasPrefix("(((doc -> 'meta') @> $4::jsonb OR (doc -> 'meta') @> $5::jsonb) AND COALESCE("))
        #expect(fragment.parameters == ["meta", "plan", #""pro""#, #"{"plan":"pro"}"#, #"{"plan":["pro"]}"#])
        // No hint where a match needn't contain the literal: null (matches missing), negations,
        // comparisons, components that may be array indexes, and paths outside the indexed key.
        for json in [
            #"{"meta.plan": null}"#, #"{"meta.plan": {"$ne": "pro"}}"#, #"{"meta.n": {"$gt": 1}}"#,
            #"{"meta.items.0": "a"}"#, #"{"doc.other": "a"}"#, #"{"meta.plan": {"$in": ["a", null]}}"#,
        ] {
            #expect(try !Self.bind(json).sql().sql.contains("@>"), "\(json)")
        }
    }

    @Test func userTextNeverReachesTheSQL() throws {
        let evil = "x'; DROP TABLE t; -- \" \\"
        let filter = try SchemaFilter(.object([
            "name": .object(["$in": [.string(evil)], "$regex": .string("\\'"), "$gt": .string(evil)]),
            "meta." + evil: .string(evil), "note": .string(evil),
        ]), schema: Self.schema)
        let fragment = filter.sql()
        #expect(!fragment.sql.contains("DROP") && !fragment.sql.contains("x'"))
        #expect(fragment.parameters.contains(evil))
    }
}

extension JSONValue {
    static func parse(_ json: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
    }
}
