import HeraldCore
import HeraldFilter
import Testing

/// The SQL text's shape (what PostgreSQL makes of it is FilterSQLTests' job, against a real server).
struct SQLGenerationTests {
    @Test func parametersAreNumberedAndShared() throws {
        let filter = try Filter(json: #"{"data.amount": {"$gt": 5, "$lt": 10}, "data.x": 5}"#)
        let fragment = filter.sql(column: "doc", firstParameter: 3)
        #expect(fragment.parameters == ["data", "amount", "5", "10", "x"])
        #expect(fragment.sql.contains("(doc) #> ARRAY[$3::text,$4::text]"))
        #expect(fragment.sql.contains("$5::numeric"))
        #expect(fragment.sql.contains("$5::jsonb"))
        #expect(!fragment.sql.contains("$2"))
        #expect(!fragment.sql.contains("$8"))
    }

    @Test func userTextNeverReachesTheSQL() throws {
        let evil = "x'; DROP TABLE t; -- \" \\"
        let filter = try Filter(.object([
            evil + ".k": .object(["$regex": .string(evil + "\\"), "$ne": .string(evil), "$gt": .string(evil)]),
            "$or": [.object([evil: .object(["$in": [.string(evil), ["a": .string(evil)]]])])],
        ]))
        let fragment = filter.sql(column: "t.doc")
        #expect(!fragment.sql.contains("DROP"))
        #expect(!fragment.sql.contains("x'"))
        #expect(fragment.parameters.contains(evil))
        #expect(fragment.parameters.contains(#"{"a":"x'; DROP TABLE t; -- \" \\"}"#))
    }

    @Test func indexLikeComponentsPostgresWouldMisread() throws {
        // "-1" and " 1" are array indexes to PostgreSQL's #> but not to Swift: object lookup only.
        let fragment = try Filter(json: #"{"a.-1.b. 2.3": 1}"#).sql(column: "doc")
        #expect(fragment.sql.contains("((((doc) #> ARRAY[$1::text]) -> $2::text) #> ARRAY[$3::text]) -> $4::text) #> ARRAY[$5::text])"))
    }

    @Test func canonicallyEquivalentValuesKeepTheirOwnParameters() throws {
        // NFC and NFD spellings of "école" are different strings to PostgreSQL (and to the evaluator).
        let fragment = try Filter(.object(["n": .object(["$gt": "\u{E9}cole", "$lte": "e\u{301}cole"])])).sql(column: "doc")
        #expect(fragment.parameters.count == 3)
        #expect(fragment.parameters[1].unicodeScalars.count == 5)
        #expect(fragment.parameters[2].unicodeScalars.count == 6)
    }

    @Test func emptyFilterIsTrue() {
        #expect(Filter.matchAll.sql(column: "doc") == SQLFragment(sql: "true", parameters: []))
    }

    @Test func jsonText() {
        #expect(JSONWriter.string(["b": [1, 2.5, .null, true], "a": "q\"\\\n\u{1}é"]) == #"{"a":"q\"\\\n\u0001é","b":[1,2.5,null,true]}"#)
        #expect(JSONWriter.string(1e20) == "1e+20")
    }
}
