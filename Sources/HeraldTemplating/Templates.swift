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
    let root: [String: Any]

    public init(_ values: [String: JSONValue]) {
        root = values.mapValues(Self.mustacheValue)
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
    func escapeText(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? ""
    }
}

struct JSONStringContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { JSONEscaping.escape(text) }
}

struct HeaderContentType: MustacheContentType {
    func escapeText(_ text: String) -> String { Escaping.headerSafe(text) }
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
