import HeraldCore
import Testing

/// What the parser returns and how it refuses, pinned: the gateway's problem details name the line,
/// column and path these give.
@Suite struct JSONParserTests {
    func failure(_ text: String) -> JSONParser.Failure? { failure(bytes: Array(text.utf8)) }

    func failure(bytes: [UInt8]) -> JSONParser.Failure? {
        do {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test func valuesOfEveryKind() throws {
        let text = #"{"s": "plain", "e": "tab\there \"q\" \\ \/ \u00e9 \ud83d\udc4b", "u": "ünï👋🏽", "i": -42, "z": 0,"#
            + #" "d": 1.5e3, "big": 92233720368547758070, "t": true, "f": false, "n": null, "a": [1, [], {}, "x"], "o": {"k": {}}}"#
        let value = try JSONParser.parse(Array(text.utf8))
        #expect(value == [
            "s": "plain", "e": .string("tab\there \"q\" \\ / é 👋"), "u": "ünï👋🏽", "i": .integer(-42), "z": .integer(0),
            "d": .double(1500), "big": .double(92_233_720_368_547_758_070), "t": .bool(true), "f": .bool(false), "n": .null,
            "a": [.integer(1), .array([]), .object([:]), "x"], "o": ["k": .object([:])],
        ])
        #expect(try JSONParser.parse(Array(" \t\r\n\"top\" \n".utf8)) == "top")
    }

    @Test func aDuplicateKeyIsRefusedWithItsPath() throws {
        let duplicate = try #require(failure("{\"a\": {\"b\": [0, {\"c\": 1, \"c\": 2}]}}"))
        #expect(duplicate.path == "a.b.1.c")
        #expect(duplicate.message == "the member 'c' appears twice in one object")
        #expect((duplicate.line, duplicate.column) == (1, 26))
        let topLevel = try #require(failure("{\"to\": 1,\n  \"to\": 2}"))
        #expect(topLevel.path == "to")
        #expect((topLevel.line, topLevel.column) == (2, 3))
        let inArray = try #require(failure("[{\"x\": 1, \"x\": 1}]"))
        #expect(inArray.path == "0.x")
    }

    @Test(arguments: [
        ("{\"a\": tru}", "unexpected text; expected 'true'", 1, 7),
        ("{\"a\": 01}", "a number may not start with 0 followed by digits", 1, 8),
        ("{\"a\": \"x\ny\"}", "a control character must be escaped in a string", 1, 9),
        ("{\"a\": \"\\q\"}", "unknown escape '\\q'", 1, 9),
        ("{\"a\": \"\\ud800x\"}", "a high surrogate \\u escape must be followed by a low one", 1, 14),
        ("{\"a\": 1,}", "expected a member name in double quotes", 1, 9),
        ("{\"a\" 1}", "expected ':' after the member name", 1, 6),
        ("[1 2]", "expected ',' or ']' in an array", 1, 4),
        ("{\"é\": 1} x", "unexpected text after the JSON value", 1, 10),
        ("{\"a\": \"", "the body ended inside a string", 1, 8),
        ("{\"a\": 1e}", "an exponent needs digits", 1, 9),
        ("{\"a\": 1e999}", "the number 1e999 is out of range", 1, 7),
        ("", "the body ended where a value was expected", 1, 1),
    ])
    func errorsSayWhatAndWhere(text: String, message: String, line: Int, column: Int) throws {
        let error = try #require(failure(text))
        #expect(error.message == message)
        #expect((error.line, error.column) == (line, column))
        #expect(error.path == "")
    }

    @Test func invalidUTF8IsRefused() throws {
        let error = try #require(failure(bytes: [0x22, 0xC3, 0x28, 0x22]))
        #expect(error.message == "the text is not valid UTF-8")
        #expect((error.line, error.column) == (1, 4))
        // After an escape, the rest of the string is checked too.
        #expect(failure(bytes: Array(#""\n"#.utf8) + [0xC3, 0x28, 0x22])?.message == "the text is not valid UTF-8")
    }

    @Test func nestingIsBounded() throws {
        let deep = String(repeating: "[", count: JSONParser.maximumDepth + 1) + String(repeating: "]", count: JSONParser.maximumDepth + 1)
        #expect(failure(deep)?.message == "nested deeper than \(JSONParser.maximumDepth) levels")
        let fine = String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth)
        #expect(failure(fine) == nil)
    }
}
