import HeraldCore
import HeraldFilter
import Testing

struct FilterParseErrorTests {
    /// (filter JSON, error path, error message)
    static let cases: [(String, String, String)] = [
        (#"{"amount": {"$gtx": 5}}"#, "amount.$gtx", "unknown operator '$gtx'"),
        (
            #"{"$or": [{"a": 1}, {"data.amount": {"$gt": true}}]}"#, "$or.1.data.amount.$gt",
            "$gt needs a number or a string, not a boolean"
        ),
        (
            #"{"$or": [{"$and": [{"x": {"$not": {"$lt": [1]}}}]}]}"#, "$or.0.$and.0.x.$not.$lt",
            "$lt needs a number or a string, not an array"
        ),
        (#"{"a": {"$gte": null}}"#, "a.$gte", "$gte needs a number or a string, not null"),
        (#"{"a": {"$in": 5}}"#, "a.$in", "$in needs an array, not a number"),
        (#"{"a": {"$nin": {"x": 1}}}"#, "a.$nin", "$nin needs an array, not an object"),
        (#"{"a": {"$regex": 5}}"#, "a.$regex", "$regex needs a string, not a number"),
        (#"{"$and": []}"#, "$and", "$and needs a non-empty array of objects, not an empty array"),
        (#"{"$or": {"a": 1}}"#, "$or", "$or needs a non-empty array of objects, not an object"),
        (#"{"$nor": [{"a": 1}, 2]}"#, "$nor.1", "$nor needs a non-empty array of objects; this element is number"),
        (
            #"{"$gt": 5}"#, "$gt",
            #"$gt is not allowed at the top level of a filter: use it on a field, as in {"field": {"$gt": …}} (only $and, $or and $nor go here)"#
        ),
        (
            #"{"$not": {"a": 1}}"#, "$not",
            #"$not is not allowed at the top level of a filter: use it on a field, as in {"field": {"$not": …}} (only $and, $or and $nor go here)"#
        ),
        (#"{"$where": "1"}"#, "$where", "unsupported operator '$where'"),
        (#"{"$foo": 1}"#, "$foo", "unknown operator '$foo'"),
        (#"{"tags": {"$elemMatch": {"a": 1}}}"#, "tags.$elemMatch", "unsupported operator '$elemMatch'"),
        (#"{"a": {"$or": [{"b": 1}]}}"#, "a.$or", "$or is only allowed at the top level of a filter, not on a field"),
        (#"{"a": {"$exists": 1}}"#, "a.$exists", "$exists needs true or false, not a number"),
        (#"{"a": {"$options": "i"}}"#, "a.$options", "$options is only allowed next to $regex"),
        (
            #"{"a": {"$regex": "x", "$options": "gi"}}"#, "a.$options",
            #"unsupported $options "gi": only "i" (or "") is supported"#
        ),
        (#"{"a": {"$regex": "x", "$options": 1}}"#, "a.$options", "$options needs a string, not a number"),
        (
            #"{"a": {"$not": 5}}"#, "a.$not",
            #"$not needs a non-empty object of operators, as in {"$not": {"$gt": 5}}, not a number"#
        ),
        (
            #"{"a": {"$not": {"b": 1}}}"#, "a.$not",
            #"$not needs a non-empty object of operators, as in {"$not": {"$gt": 5}}, not an object"#
        ),
        (
            #"{"a": {"$gt": 1, "b": 2}}"#, "a",
            "an object can't mix operators ($…) and field names: use only operators, or only fields for an equality on the whole sub-document"
        ),
        (#"{"a..b": 1}"#, "a..b", "a field path can't be empty or have an empty component"),
        (#"{"": 1}"#, "", "a field path can't be empty or have an empty component"),
        (#"{"a.$b": 1}"#, "a.$b", "a field path component can't start with '$'"),
        (#"[1]"#, "", "a filter must be an object, not array"),
        (#"{"a": "x\u0000"}"#, "a", "strings can't contain U+0000"),
        (#"{"a": {"$in": [1, {"k": "\u0000"}]}}"#, "a.$in.1.k", "strings can't contain U+0000"),
        // regex subset
        (#"{"a": {"$regex": "x(?=y)"}}"#, "a.$regex", "invalid $regex: unsupported construct: lookahead '(?=' at offset 1"),
        (#"{"a": {"$regex": "(?<!y)x"}}"#, "a.$regex", "invalid $regex: unsupported construct: negative lookbehind '(?<!' at offset 0"),
        (#"{"a": {"$regex": "(?i)x"}}"#, "a.$regex", "invalid $regex: unsupported construct: inline options '(?…)' at offset 0"),
        (#"{"a": {"$regex": "(a)\\1"}}"#, "a.$regex", "invalid $regex: backreferences ('\\1') are not supported at offset 3"),
        (#"{"a": {"$regex": "\\bword"}}"#, "a.$regex", "invalid $regex: word boundaries ('\\b') are not supported at offset 0"),
        (#"{"a": {"$regex": "a*?"}}"#, "a.$regex", "invalid $regex: lazy quantifiers ('*?', '+?', '??', '{n,m}?') are not supported at offset 2"),
        (#"{"a": {"$regex": "a**"}}"#, "a.$regex", "invalid $regex: a quantifier can't follow another quantifier (group the first: '(?:a*)*') at offset 2"),
        (#"{"a": {"$regex": "*a"}}"#, "a.$regex", "invalid $regex: '*' has nothing to repeat (write '\\*' for the character) at offset 0"),
        (#"{"a": {"$regex": "^*"}}"#, "a.$regex", "invalid $regex: a quantifier can't follow '^' at offset 0"),
        (#"{"a": {"$regex": "(ab"}}"#, "a.$regex", "invalid $regex: unmatched '(' at offset 0"),
        (#"{"a": {"$regex": "ab)"}}"#, "a.$regex", "invalid $regex: unmatched ')' at offset 2"),
        (#"{"a": {"$regex": "[a-"}}"#, "a.$regex", "invalid $regex: unterminated character class '[' at offset 0"),
        (#"{"a": {"$regex": "[z-a]"}}"#, "a.$regex", "invalid $regex: character range is out of order at offset 1"),
        (#"{"a": {"$regex": "[[:alpha:]]"}}"#, "a.$regex", "invalid $regex: POSIX bracket expressions ('[:') are not supported at offset 1"),
        (#"{"a": {"$regex": "[]a]"}}"#, "a.$regex", "invalid $regex: empty character class (write '\\]' for a literal ']') at offset 0"),
        (#"{"a": {"$regex": "a{2,1}"}}"#, "a.$regex", "invalid $regex: repetition bound {2,1} has max below min at offset 1"),
        (#"{"a": {"$regex": "a{256}"}}"#, "a.$regex", "invalid $regex: repetition bounds can't exceed 255 at offset 1"),
        (#"{"a": {"$regex": "a{x"}}"#, "a.$regex", "invalid $regex: '{' must start a bound {n}, {n,} or {n,m} (write '\\{' for a literal brace) at offset 1"),
        (#"{"a": {"$regex": "\\x41"}}"#, "a.$regex", "invalid $regex: the escape '\\x' is not supported at offset 0"),
        (#"{"a": {"$regex": "[\\W]"}}"#, "a.$regex", "invalid $regex: '\\W' is not supported inside a character class at offset 1"),
        (#"{"a": {"$regex": "x\\"}}"#, "a.$regex", "invalid $regex: pattern ends with a lone '\\' at offset 1"),
        (#"{"a": {"$regex": "((((a{255}){255}))){2}"}}"#, "a.$regex", "invalid $regex: pattern is too complex (repetitions expand too far) at offset 0"),
    ]

    @Test(arguments: cases)
    func rejects(_ json: String, _ path: String, _ message: String) {
        #expect(throws: FilterError(path: path, message: message), "\(json)") {
            try Filter(json: json)
        }
    }

    @Test func invalidJSON() {
        do {
            _ = try Filter(json: "{")
            Issue.record("parsed invalid JSON")
        } catch {
            #expect(error.path == "")
            #expect(error.message.hasPrefix("not valid JSON"))
        }
    }

    @Test func nonFiniteNumbers() {
        #expect(throws: FilterError(path: "a.$in.0", message: "numbers must be finite")) {
            try Filter(["a": ["$in": [.double(.infinity)]]])
        }
    }

    @Test func description() {
        #expect(
            FilterError(path: "a.$in", message: "$in needs an array, not a number").description
                == "invalid filter at a.$in: $in needs an array, not a number")
        #expect(FilterError(path: "", message: "x").description == "invalid filter: x")
    }
}
