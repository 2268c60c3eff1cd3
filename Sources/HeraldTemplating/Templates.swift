import Foundation
import HeraldCore
import Mustache

/// Where a rendered value lands, which decides how it is escaped. Escaping is the language's job:
/// a template author can't forget it, and can't switch it off (triple mustaches are refused).
public enum Escaping: String, Sendable, Hashable {
    /// As is: plain-text message parts, values the serialiser escapes afterwards (JSON leaves, form fields).
    case text
    /// HTML e-mail bodies.
    case html
    /// URLs: every value percent-encoded, so it can't add a path segment, query or fragment.
    case url
    /// Inside a JSON string literal written by hand (`body.text` with `application/json`).
    case jsonString
    /// Header values: line breaks and other controls removed (`headerSafe`), so a value can't start a new header.
    case header

    var pragmaName: String {
        switch self {
        case .text: "TEXT"
        case .html: "HTML"
        case .url: "HERALD_URL"
        case .jsonString: "HERALD_JSON"
        case .header: "HERALD_HEADER"
        }
    }
}

public struct TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where in the configuration (`file:line:column`) the template starts, when known.
    public var location: String
    public var message: String
    /// Where in the template (1-based line and column) the problem is, when known.
    public var position: (line: Int, column: Int)?

    public init(location: String, message: String, position: (line: Int, column: Int)? = nil) {
        self.location = location
        self.message = message
        self.position = position
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.location == rhs.location && lhs.message == rhs.message && lhs.position?.line == rhs.position?.line
            && lhs.position?.column == rhs.position?.column
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(location)
        hasher.combine(message)
        hasher.combine(position?.line)
        hasher.combine(position?.column)
    }

    public var description: String { location.isEmpty ? message : "\(location): \(message)" }
}

/// A template compiled once (at configuration load), rendered many times.
public struct CompiledTemplate: Sendable {
    public let source: TemplateText
    public let escaping: Escaping
    /// `secrets.NAME` references: resolved before rendering, so a missing secret is an error, not an empty string.
    public let secretNames: Set<String>
    /// The dotted names of the value tags outside any section (`{{data.name}}`), in order: what a
    /// rendering needs its context to have. Tags inside `{{#…}}`/`{{^…}}` may refer to a section's
    /// own item, so they are not listed.
    public let requiredNames: [String]
    private let template: MustacheTemplate
    /// The same template as literal text and plain value tags, when that is all it is (most provider
    /// templates: `{{to.webhook_url}}`, `{{delivery_id}}`, `Bearer {{secrets.TOKEN}}`): rendered
    /// straight from the JSON values, without building Mustache's `[String: Any]` context or casting
    /// each value. Nil for anything else (sections, comments, transforms, HTML escaping).
    let plainSegments: [PlainSegment]?

    /// Compiles `text` for `escaping`. Fails on Mustache syntax errors and on constructs that switch
    /// escaping off (`{{{x}}}`, `{{& x}}`) or pull in other files (`{{> partial}}`).
    public init(_ text: TemplateText, escaping: Escaping) throws(TemplateError) {
        ContentTypes.registerOnce()
        if let (forbidden, position) = Self.forbiddenConstruct(in: text.source) {
            throw TemplateError(location: text.location, message: forbidden, position: position)
        }
        if let position = Self.unclosedTag(in: text.source) {
            throw TemplateError(location: text.location, message: "this '{{' tag is not closed with '}}'", position: position)
        }
        do {
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: \(escaping.pragmaName)}}" + text.source)
        } catch let error as MustacheTemplate.ParserError {
            let reason: String =
                switch error.error {
                case MustacheTemplate.Error.sectionCloseNameIncorrect: "a section is closed with a different name than it was opened with"
                case MustacheTemplate.Error.expectedSectionEnd: "a section ('{{#name}}' or '{{^name}}') is not closed with '{{/name}}'"
                case MustacheTemplate.Error.unfinishedName: "a tag name is not finished"
                default: "\(error.error)"
                }
            throw TemplateError(
                location: text.location, message: "template syntax error: \(reason)",
                position: (error.context.lineNumber, error.context.columnNumber + 1))
        } catch {
            throw TemplateError(location: text.location, message: "template syntax error: \(error)")
        }
        source = text
        self.escaping = escaping
        secretNames = Self.secretReferences(in: text.source)
        requiredNames = Self.topLevelValueNames(in: text.source)
        plainSegments = PlainSegment.parse(text.source, escaping: escaping)
    }

    static func topLevelValueNames(in source: String) -> [String] {
        var names: [String] = []
        var depth = 0
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            let tag = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            switch tag.first {
            case "#"?, "^"?: depth += 1
            case "/"?: depth = max(0, depth - 1)
            case "!"?, "="?: break
            default:
                if depth == 0, !tag.isEmpty, tag != ".", !names.contains(tag) { names.append(tag) }
            }
            rest = rest[close.upperBound...]
        }
        return names
    }

    /// Renders with `context` (a JSON object; `secrets` is added by the caller when needed).
    public func render(_ context: RenderContext) -> String {
        if let plainSegments, let rendered = PlainSegment.render(plainSegments, values: context.values, escaping: escaping) {
            return rendered
        }
        return renderWithMustache(context)
    }

    /// Always through Mustache: what `render` must equal (the tests compare the two).
    func renderWithMustache(_ context: RenderContext) -> String {
        template.render(context.root)
    }

    /// The first construct that would switch escaping off or pull in other files, with its position.
    static func forbiddenConstruct(in source: String) -> (String, (line: Int, column: Int))? {
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            let after = rest[open.upperBound...].drop(while: { $0 == " " })
            let message: String? =
                switch after.first {
                case "{"?: "'{{{' switches escaping off and is not allowed; write '{{name}}': Herald escapes for the target"
                case "&"?: "'{{&' switches escaping off and is not allowed; write '{{name}}': Herald escapes for the target"
                case ">"?, "<"?, "$"?: "partials and inheritance ('{{>', '{{<', '{{$') are not supported here"
                case "%"?: "pragmas ('{{%') are set by Herald, not by templates"
                default: nil
                }
            if let message { return (message, position(of: open.lowerBound, in: source)) }
            rest = rest[open.upperBound...]
        }
        return nil
    }

    /// The position of a `{{` with no `}}` after it.
    static func unclosedTag(in source: String) -> (line: Int, column: Int)? {
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { return position(of: open.lowerBound, in: source) }
            rest = rest[close.upperBound...]
        }
        return nil
    }

    static func position(of index: String.Index, in source: String) -> (line: Int, column: Int) {
        let before = source[..<index]
        let line = before.count(where: { $0 == "\n" }) + 1
        let column = before.split(separator: "\n", omittingEmptySubsequences: false).last.map { $0.unicodeScalars.count + 1 } ?? 1
        return (line, column)
    }

    /// `secrets.NAME` inside `{{…}}` tags only: `https://secrets.example.com` in plain text names no secret.
    static func secretReferences(in source: String) -> Set<String> {
        var names = Set<String>()
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            let tag = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            let name = tag.drop(while: { "#^/".contains($0) }).trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("secrets.") {
                let secret = name.dropFirst("secrets.".count).prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" })
                if !secret.isEmpty { names.insert(String(secret)) }
            }
            rest = rest[close.upperBound...]
        }
        return names
    }
}

/// The values a template sees, built from JSON.
public struct RenderContext {
    let values: [String: JSONValue]
    private let mustache: MustacheRoot

    public init(_ values: [String: JSONValue]) {
        self.values = values
        mustache = MustacheRoot(values)
    }

    /// Mustache's view of the values, built when a template first needs it: plain templates don't.
    var root: [String: Any] { mustache.root }

    private final class MustacheRoot {
        let values: [String: JSONValue]
        lazy var root: [String: Any] = values.mapValues(RenderContext.mustacheValue)
        init(_ values: [String: JSONValue]) { self.values = values }
    }

    static func mustacheValue(_ value: JSONValue) -> Any {
        switch value {
        case .null: return ""
        case .bool(let bool): return bool
        case .integer(let integer): return Int(integer)
        case .double(let double): return double
        case .string(let string): return string
        case .array(let array): return array.map(mustacheValue)
        case .object(let object): return object.mapValues(mustacheValue)
        }
    }
}

enum ContentTypes {
    private static let registration: Void = {
        MustacheContentTypes.register(URLContentType(), named: Escaping.url.pragmaName)
        MustacheContentTypes.register(JSONStringContentType(), named: Escaping.jsonString.pragmaName)
        MustacheContentTypes.register(HeaderContentType(), named: Escaping.header.pragmaName)
    }()

    static func registerOnce() { _ = registration }
}

struct URLContentType: MustacheContentType {
    // RFC 3986 unreserved characters only: everything else is encoded, '/', '?', '#', '&' included.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    func escapeText(_ text: String) -> String { Escaping.url.escape(text) ?? text }
}

struct JSONStringContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { Escaping.jsonString.escape(text) ?? text }
}

struct HeaderContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { Escaping.header.escape(text) ?? text }
}

extension Escaping {
    /// A value escaped for where it lands: the one rule for Herald's own content types, used by Mustache
    /// and by plain templates alike. Nil for HTML, which only Mustache's own content type escapes.
    func escape(_ text: String) -> String? {
        switch self {
        case .text: text
        case .html: nil
        case .url: text.addingPercentEncoding(withAllowedCharacters: URLContentType.unreserved) ?? ""
        case .jsonString: JSONEscaping.escape(text)
        case .header: Escaping.headerSafe(text)
        }
    }
}

/// A piece of a template that holds only literal text and plain value tags (`CompiledTemplate.plainSegments`).
enum PlainSegment: Equatable {
    case text(String)
    /// A value tag's dotted name, split: `{{ to.webhook_url }}` is `["to", "webhook_url"]`.
    case value([String])

    /// The segments of `source`, or nil unless every tag is a plain value (`{{name}}`, `{{a.b_c}}`).
    /// Two of Mustache's whitespace rules leave a source with Mustache too: it drops a standalone first
    /// line (the `CONTENT_TYPE` pragma that `CompiledTemplate` puts before the source, with the line
    /// break after it, when the source's first line is blank), and it drops a last line of only spaces
    /// and tabs. Line breaks are Mustache's: any `Character.isNewline`.
    static func parse(_ source: String, escaping: Escaping) -> [PlainSegment]? {
        guard escaping.escape("") != nil else { return nil }
        func isBlank(_ line: Substring) -> Bool { line.allSatisfy { $0 == " " || $0 == "\t" } }
        let firstLine = source.prefix { !$0.isNewline }
        guard !isBlank(firstLine) else { return nil }
        if let lastBreak = source.lastIndex(where: \.isNewline) {
            let lastLine = source[source.index(after: lastBreak)...]
            guard lastLine.isEmpty || !isBlank(lastLine) else { return nil }
        }
        var segments: [PlainSegment] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { return nil }
            if open.lowerBound > rest.startIndex { segments.append(.text(String(rest[..<open.lowerBound]))) }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            let isPlainName = parts.allSatisfy { part in
                guard let first = part.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
                return part.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
            }
            guard isPlainName else { return nil }
            segments.append(.value(parts.map(String.init)))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { segments.append(.text(String(rest))) }
        return segments
    }

    /// The rendering, or nil when a value is not a string, an integer or null (Mustache then renders
    /// it, with its own rules for the other kinds and for names that aren't there).
    static func render(_ segments: [PlainSegment], values: [String: JSONValue], escaping: Escaping) -> String? {
        var out = ""
        for segment in segments {
            switch segment {
            case .text(let text):
                out += text
            case .value(let path):
                // Herald's one path walker; where its scalar-exact keys and Mustache's canonically
                // equal ones differ, it finds nothing and Mustache renders.
                guard let value = JSONValue.object(values).value(at: path) else { return nil }
                let text: String
                switch value {
                case .string(let string): text = string
                case .integer(let integer): text = String(integer)
                case .null: text = ""
                default: return nil
                }
                guard let escaped = escaping.escape(text) else { return nil }
                out += escaped
            }
        }
        return out
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

extension Escaping {
    /// A header value: removes what could end or split a header line (CR, LF, NUL and the other C0
    /// controls but tab, and DEL). Rendered header templates get it, and so does every other value
    /// Herald puts in a header (a content type, a token).
    public static func headerSafe(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars where scalar == "\t" || (scalar.value >= 0x20 && scalar.value != 0x7F) {
            out.append(scalar)
        }
        return String(out)
    }
}
