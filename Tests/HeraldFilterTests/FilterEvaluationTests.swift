import HeraldCore
import HeraldFilter
import Testing

struct FilterEvaluationTests {
    /// (filter, ids of `Fixtures.documents` it must match)
    static let cases: [(String, Set<Int>)] = [
        // equality, implicit and explicit
        (#"{"channel": "sms"}"#, [1, 4]),
        (#"{"channel": {"$eq": "sms"}}"#, [1, 4]),
        (#"{"channel": {"$ne": "sms"}}"#, [2, 3, 5, 6, 7, 8]),
        (#"{"priority": 10}"#, [3]),  // 10 == 10.0
        (#"{"amount": 0.1}"#, [8]),
        (#"{"active": true}"#, [1]),
        (#"{"active": {"$ne": true}}"#, [2, 3, 4, 5, 6, 7, 8]),
        (#"{"data.items.0.qty": 2}"#, [1, 8]),  // 2 and 2.0
        // numeric comparisons (type mismatches never match)
        (#"{"priority": {"$gt": 5}}"#, [3, 7]),
        (#"{"priority": {"$gte": 5}}"#, [1, 3, 7]),
        (#"{"priority": {"$lt": 1}}"#, [8]),
        (#"{"priority": {"$lte": 1}}"#, [2, 8]),
        (#"{"priority": {"$gt": 1, "$lt": 10}}"#, [1, 7]),
        (#"{"amount": {"$gt": 10}}"#, [1, 5, 7]),
        (#"{"amount": {"$gte": 9223372036854775807}}"#, [5, 7]),
        (#"{"amount": {"$lt": 9.2233720368547758e18}}"#, [1, 2, 3, 7, 8]),  // 2^63 > Int64.max
        // string comparisons by Unicode scalar
        (#"{"priority": {"$gt": "a"}}"#, [4]),
        (#"{"channel": {"$lt": "sms"}}"#, [2, 5, 7]),
        (#"{"channel": {"$gte": "sms"}}"#, [1, 3, 4, 8]),
        (#"{"channel": {"$lt": "e"}}"#, [5]),  // "Email" < "e" < "email"
        // arrays: any element, or the whole array
        (#"{"tags": "urgent"}"#, [1, 4]),
        (#"{"tags": ["urgent"]}"#, [7]),
        (#"{"tags": ["urgent", "billing"]}"#, [1]),
        (#"{"tags": ["billing", "urgent"]}"#, []),
        (#"{"tags": []}"#, [3]),
        (#"{"tags": {"$in": ["billing", "x"]}}"#, [1, 2, 7]),
        (#"{"tags": {"$nin": ["billing", "x"]}}"#, [3, 4, 5, 6, 8]),
        (#"{"scores": {"$gt": 6}}"#, []),  // [7, 8] is nested one level too deep, "9" is a string
        (#"{"scores": {"$gte": 5.5}}"#, [3]),
        (#"{"scores": [7, 8]}"#, [3]),
        (#"{"scores": "9"}"#, [3]),
        (#"{"scores": 9}"#, []),
        (#"{"nested.a.b.c": 2}"#, [5]),
        (#"{"nested.a.b.c.2": 3}"#, [5]),
        // null and missing
        (#"{"tags": null}"#, [5, 6]),
        (#"{"note": null}"#, [1, 2, 6, 7, 8]),
        (#"{"note": {"$ne": null}}"#, [3, 4, 5]),
        (#"{"note": {"$exists": true}}"#, [2, 3, 4, 5]),
        (#"{"note": {"$exists": false}}"#, [1, 6, 7, 8]),
        (#"{"to.phone": {"$exists": true}}"#, [1, 4, 8]),
        (#"{"priority": {"$in": [null, 7]}}"#, [5, 6, 7]),
        (#"{"priority": {"$nin": [null, 7]}}"#, [1, 2, 3, 4, 8]),
        (#"{"priority": {"$not": {"$exists": true}}}"#, [6]),
        (#"{"channel": {"$in": []}}"#, []),
        (#"{"channel": {"$nin": []}}"#, [1, 2, 3, 4, 5, 6, 7, 8]),
        // paths through arrays and objects
        (#"{"data.items.0.sku": "A1"}"#, [1, 8]),
        (#"{"data.items.0.sku": "obj-key"}"#, [7]),  // "0" is an object key in document 7
        (#"{"data.items.1.qty": {"$lt": 2}}"#, [1]),
        (#"{"weird.-1": "neg"}"#, [7]),
        (#"{"weird. 1": "space"}"#, [7]),
        (#"{"weird.01": "zero-one"}"#, [7]),
        (#"{"arr.-1": "c"}"#, []),  // no negative indexes
        (#"{"arr. 1": "b"}"#, []),
        (#"{"arr.01": "b"}"#, [7]),  // Int("01") == 1
        // whole sub-document equality
        (#"{"data": {"country": "DE", "items": [{"sku": "A1", "qty": 2}, {"qty": 1.0, "sku": "B2"}]}}"#, [1]),
        (#"{"data": {"country": "DE"}}"#, []),
        (#"{"data.meta": {"k": [1.0, 2]}}"#, [8]),
        // regex
        (#"{"to.phone": {"$regex": "^\\+1555"}}"#, [1, 4]),
        (#"{"to.email": {"$regex": "example\\.com$", "$options": "i"}}"#, [1, 2]),
        (#"{"to.email": {"$regex": "example\\.com$"}}"#, [1]),
        (#"{"data.country": {"$regex": "^de$", "$options": "i"}}"#, [1, 3]),
        (#"{"note": {"$regex": "école"}}"#, [5]),  // scalar-wise: the decomposed form doesn't match
        (#"{"note": {"$regex": "ÉCOLE", "$options": "i"}}"#, [3]),  // ASCII-only folding
        (#"{"note": {"$regex": "^e.cole$"}}"#, [4]),  // '.' is one scalar (U+0301)
        (#"{"channel": {"$regex": "^sms$"}}"#, [1, 4]),  // '$' is the very end
        (#"{"channel": {"$regex": "^sms\\n$"}}"#, [8]),
        (#"{"tags": {"$regex": "^urg"}}"#, [1, 4]),
        (#"{"tags": {"$regex": "^urg", "$options": "i"}}"#, [1, 4, 5]),
        (#"{"priority": {"$regex": "5"}}"#, []),  // numbers are not strings
        (#"{"channel": {"$not": {"$regex": "^s"}}}"#, [2, 3, 5, 6, 7]),
        // logical
        (#"{"$or": [{"channel": "sms"}, {"priority": {"$gt": 5}}]}"#, [1, 3, 4, 7]),
        (#"{"$and": [{"channel": "sms"}, {"to.phone": {"$regex": "2$"}}]}"#, [4]),
        (#"{"$nor": [{"channel": "sms"}, {"priority": {"$gt": 5}}]}"#, [2, 5, 6, 8]),
        (#"{"priority": {"$not": {"$gt": 5}}}"#, [1, 2, 4, 5, 6, 8]),
        (#"{"to": {"$exists": true}, "channel": "sms"}"#, [1, 4]),
        (#"{}"#, [1, 2, 3, 4, 5, 6, 7, 8]),
        (#"{"$or": [{"$and": [{"tags": "billing"}, {"amount": {"$lte": 10}}]}, {"note": {"$regex": "cole$"}}]}"#, [2, 4, 5]),
    ]

    @Test(arguments: cases)
    func matches(_ json: String, _ expected: Set<Int>) throws {
        let filter = try Filter(json: json)
        #expect(Fixtures.matchingIDs(filter) == expected, "\(json)")
    }

    @Test func equivalentSpellings() throws {
        // The implicit equality and $eq build the same tree; several keys are an $and.
        #expect(try Filter(json: #"{"a": 1}"#) == Filter(json: #"{"a": {"$eq": 1}}"#))
        let both = try Filter(json: #"{"a": 1, "b": 2}"#)
        let explicit = try Filter(json: #"{"$and": [{"a": 1}, {"b": 2}]}"#)
        #expect(both == explicit)
        #expect(Filter.matchAll.matches([:]))
    }

    @Test func syntaxTree() throws {
        let filter = try Filter(json: #"{"data.amount": {"$gt": 5, "$lte": 10.5}, "$or": [{"x": {"$not": {"$in": [1, "a"]}}}]}"#)
        #expect(
            filter.expression
                == .and([
                    .or([.field(path: FieldPath("x"), condition: .not(.in([1, "a"])))]),
                    .field(path: FieldPath(components: ["data", "amount"]), condition: .all([.gt(5), .lte(10.5)])),
                ]))
    }

    @Test func hashableAndSendable() throws {
        let set: Set<Filter> = [try Filter(json: #"{"a": 1}"#), try Filter(json: #"{"a": {"$eq": 1}}"#)]
        #expect(set.count == 1)
    }

    @Test func handBuiltTreesAreValidated() throws {
        #expect(throws: FilterError(path: "$or", message: "$or needs a non-empty array of objects")) {
            try Filter(expression: .or([]))
        }
        #expect(throws: FilterError(path: "a.$gt", message: "$gt needs a number or a string, not a boolean")) {
            try Filter(expression: .field(path: FieldPath("a"), condition: .gt(true)))
        }
        let filter = try Filter(expression: .field(path: FieldPath("a"), condition: .eq(1)))
        #expect(filter.matches(["a": 1.0]))
    }

    @Test func numbersCompareExactly() throws {
        // Int64 vs Double without rounding the integer to a double.
        let big = try Filter(json: #"{"n": {"$gt": 9007199254740992}}"#)
        #expect(big.matches(["n": .integer(9_007_199_254_740_993)]))
        #expect(!big.matches(["n": .double(9_007_199_254_740_992)]))
        let equal = try Filter(json: #"{"n": 9007199254740993}"#)
        #expect(!equal.matches(["n": .double(9_007_199_254_740_992)]))
        #expect(try Filter(json: #"{"n": {"$lt": -0.5}}"#).matches(["n": -1]))
        #expect(!(try Filter(json: #"{"n": {"$lt": -0.5}}"#).matches(["n": 0])))
        #expect(try Filter(json: #"{"n": 0}"#).matches(["n": .double(-0.0)]))
        // From 2^53 on, a double compares as the shortest decimal JSON (and so PostgreSQL) holds:
        // 2^60 is written 1.152921504606847e+18.
        let twoTo60 = JSONValue.double(1_152_921_504_606_846_976)
        #expect(try Filter(json: #"{"n": {"$gt": 1152921504606846990}}"#).matches(["n": twoTo60]))
        #expect(try Filter(json: #"{"n": 1152921504606847000}"#).matches(["n": twoTo60]))
        #expect(!(try Filter(json: #"{"n": 1152921504606846976}"#).matches(["n": twoTo60])))
        #expect(try Filter(json: #"{"n": {"$lt": -9223372036854775808}}"#).matches(["n": .double(-9_223_372_036_854_775_808)]))
        #expect(try Filter(json: #"{"n": {"$gt": 9223372036854775807}}"#).matches(["n": .double(9_223_372_036_854_775_808)]))
        #expect(try Filter(json: #"{"n": {"$lt": 0}}"#).matches(["n": .double(-Double.infinity)]))
    }

    @Test func keysAndStringsCompareByScalars() throws {
        let precomposed = "\u{E9}"
        let decomposed = "e\u{301}"
        let filter = try Filter(.object([precomposed: .string(decomposed)]))
        #expect(filter.matches(.object([precomposed: .string(decomposed)])))
        #expect(!filter.matches(.object([precomposed: .string(precomposed)])))
        #expect(!filter.matches(.object([decomposed: .string(decomposed)])))
    }
}
