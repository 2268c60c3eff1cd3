import Foundation
import HeraldCore
import Testing

@testable import HeraldTemplating

/// Plain templates (literal text and value tags) render without Mustache; whatever they render must be
/// what Mustache renders for the same source and values.
@Suite struct PlainTemplateTests {
    static let contexts: [[String: JSONValue]] = [
        [:],
        [
            "a": "alpha", "n": .integer(-42), "z": .null, "t": .bool(true), "d": .double(1.5),
            "b": ["c": "nested & <b>\"quoted\"</b>", "deep": ["er": "ünïcødé 👋🏽 e\u{301}"], "list": ["x", "y"]],
            "secrets": ["TOKEN": "s3cr3t\r\nX-Injected: yes"],
            "to": ["webhook_url": "https://hooks.example.com/a?b=c#d"],
            "a-b": "dashed", "_x": "under",
        ],
        ["a": "", "b": .string("not an object"), "n": .integer(Int64.max)],
        ["a": ["c": "a is an object"], "b": ["c": .integer(0)], "to": .array([])],
        // The Kelvin sign is canonically "K": Mustache's dictionary lookup finds it for {{K}}, Herald's path walker doesn't.
        ["\u{212A}": "kelvin", "b": ["\u{212A}": "nested kelvin"]],
    ]

    static let sources = [
        "{{a}}", " {{ a }} ", "x{{a}}y{{b.c}}z", "{{a}}}", "}}{{a}}", "{{n}}", "{{z}}", "{{t}}", "{{d}}",
        "{{b.deep.er}}", "{{b.list}}", "{{b.missing}}", "{{missing}}", "{{missing.deeper}}", "{{a-b}}", "{{_x}}",
        "Bearer {{secrets.TOKEN}}", "{{to.webhook_url}}", "line one {{a}}\nline two {{b.c}}\r\nline three",
        "  \n{{a}}", "\r\n{{a}}", "\n", "plain text only", "{{#b}}{{c}}{{/b}}", "{{! a comment}}{{a}}", "{{^a}}none{{/a}}",
        "{{.}}", "{{a.}}", "{{a..b}}", "{{ b.c}}{{b.c }}", "{{\ta\t}}", "caf\u{E9} {{a}}", "{{1a}}",
        " \r{{a}}", "{{a}}\u{2028} ", "{{a}}\n\t", "{{a}} ", "x {{a}}\n {{a}} \n", "\t{{a}}", "{{a}}\r\n", "{{K}}", "{{b.K}}",
    ]

    @Test(arguments: [Escaping.text, .url, .jsonString, .header, .html])
    func plainTemplatesRenderAsMustacheDoes(escaping: Escaping) throws {
        for source in Self.sources {
            guard let template = try? CompiledTemplate(TemplateText(source), escaping: escaping) else { continue }
            for values in Self.contexts {
                let context = RenderContext(values)
                #expect(template.render(context) == template.renderWithMustache(context), "source \(source.debugDescription)")
            }
        }
    }

    /// Random sources from pieces that Mustache treats specially, each compared on every context.
    @Test func randomTemplatesRenderAsMustacheDoes() {
        var generator = SplitMix64(seed: 11)
        let pieces = ["{{", "}}", "a", "b", ".", "c", " ", "\n", "\r\n", "x", "{{a}}", "{{b.c}}", "{{n}}", "#", "!", "}", "-", "\t", "\r", "\u{2028}"]
        var plain = 0
        for _ in 0..<3_000 {
            let source = (0..<Int.random(in: 1...8, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            for escaping in [Escaping.text, .jsonString, .url] {
                guard let template = try? CompiledTemplate(TemplateText(source), escaping: escaping) else { continue }
                if template.plainSegments != nil { plain += 1 }
                for values in Self.contexts {
                    let context = RenderContext(values)
                    #expect(template.render(context) == template.renderWithMustache(context), "source \(source.debugDescription)")
                }
            }
        }
        #expect(plain > 1_000)  // the comparison covered the plain path, not only Mustache's
    }

    @Test func providerTemplatesTakeThePlainPath() throws {
        for source in ["{{to.webhook_url}}", "Bearer {{secrets.TOKEN}}", "{{delivery_id}}", "https://api.example.com/{{data.id}}/x"] {
            #expect(try CompiledTemplate(TemplateText(source), escaping: .url).plainSegments != nil, "\(source)")
        }
        #expect(try CompiledTemplate(TemplateText("{{a}} and {{b.c}}"), escaping: .text).plainSegments == [
            .value(["a"]), .text(" and "), .value(["b", "c"]),
        ])
        for source in ["{{#a}}x{{/a}}", "{{! note}}", "\n{{a}}", "{{a.}}", "{{.}}"] {
            #expect(try CompiledTemplate(TemplateText(source), escaping: .text).plainSegments == nil, "\(source.debugDescription)")
        }
        #expect(try CompiledTemplate(TemplateText("<p>{{a}}</p>"), escaping: .html).plainSegments == nil)
    }
}
