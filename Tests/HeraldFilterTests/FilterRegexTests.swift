import HeraldFilter
import Testing

struct FilterRegexTests {
    /// (pattern, case-insensitive, subject, matches)
    static let cases: [(String, Bool, String, Bool)] = [
        ("", false, "", true),
        ("abc", false, "xxabcxx", true),
        ("^abc", false, "xabc", false),
        ("abc$", false, "abc\n", false),
        ("a.c", false, "a\nc", true),
        ("a|b|c", false, "zzc", true),
        ("^(?:ab|cd)+$", false, "abcdab", true),
        ("^(ab|cd)+$", false, "abcda", false),
        ("^a{2,3}$", false, "aaa", true),
        ("^a{2,3}$", false, "aaaa", false),
        ("^a{2}$", false, "aa", true),
        ("^a{2,}$", false, "aaaaaa", true),
        ("^a?b+c*$", false, "bbb", true),
        ("^[a-c]+$", false, "abcab", true),
        ("^[^a-c]+$", false, "xyz", true),
        ("^[^a-c]+$", false, "xaz", false),
        ("^[-a]+$", false, "a-a", true),
        ("^[a-]+$", false, "a-a", true),
        ("^[\\]\\[\\\\]+$", false, "][\\", true),
        ("^\\d+$", false, "0123", true),
        ("^\\d+$", false, "١٢", false),  // Arabic-Indic digits are not \d
        ("^\\w+$", false, "a_Z9", true),
        ("^\\w+$", false, "é", false),
        ("^\\s$", false, "\t", true),
        ("^\\S\\D\\W$", false, "xx-", true),
        ("^[\\d\\s]+$", false, "1 2", true),
        ("\\.\\*\\+\\?\\(\\)\\{\\}\\|\\^\\$", false, ".*+?(){}|^$", true),
        ("a]b}c", false, "a]b}c", true),
        ("ÉCOLE", true, "école", false),
        ("école", true, "ÉCOLE", false),
        ("école", true, "éCOLE", true),
        ("^[a-z]+$", true, "AbC", true),
        ("^[^a]$", true, "A", false),
        ("^[Z-a]$", true, "z", true),  // Z, [, \, ], ^, _, `, a — folded: z and A are in
        ("^\\W$", true, "a", false),
        ("😀+", false, "x😀😀", true),
        ("^.$", false, "😀", true),
        ("^.$", false, "e\u{301}", false),  // two scalars
        ("(a*)*b", false, String(repeating: "a", count: 5000), false),  // linear, no backtracking blow-up
        ("(x+x+)+y", false, String(repeating: "x", count: 2000), false),
    ]

    @Test(arguments: cases)
    func matching(_ pattern: String, _ caseInsensitive: Bool, _ subject: String, _ expected: Bool) throws {
        let regex = try FilterRegex(pattern: pattern, caseInsensitive: caseInsensitive)
        #expect(regex.matches(subject) == expected, "\(regex) on \(subject.debugDescription)")
    }

    @Test func postgresSpelling() throws {
        #expect(try FilterRegex(pattern: "^a.b$").postgresPattern == "^a.b$")
        #expect(try FilterRegex(pattern: "a+b", caseInsensitive: true).postgresPattern == "[Aa]+[Bb]")
        #expect(try FilterRegex(pattern: "x\\.y\\n").postgresPattern == "x\\.y\\u000A")
        #expect(try FilterRegex(pattern: "[^a-c]").postgresPattern == "[^a-c]")
        #expect(try FilterRegex(pattern: "\\d{2,3}|é").postgresPattern == "(?:[0-9]{2,3}|\\u00E9)")
        #expect(try FilterRegex(pattern: "(ab)*").postgresPattern == "(?:(?:ab))*")
        #expect(try FilterRegex(pattern: "😀").postgresPattern == "\\U0001F600")
        #expect(try FilterRegex(pattern: "'; DROP").postgresPattern == "\\'\\;\\u0020DROP")
    }
}
