import Foundation

/// A template's source text, and where it came from (for error messages).
public struct TemplateText: Sendable, Hashable {
    public var source: String {
        didSet { isSingleValue = Self.isSingleValue(source) }
    }
    /// `file:line:column` of the value in the configuration.
    public var location: String
    /// The whole text is one value (`{{to.webhook_url}}`), nothing around it. Worked out once: every
    /// attempt's URL asks.
    public private(set) var isSingleValue: Bool

    public init(_ source: String, location: String = "") {
        self.source = source
        self.location = location
        self.isSingleValue = Self.isSingleValue(source)
    }

    static func isSingleValue(_ source: String) -> Bool {
        let trimmed = source.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("{{"), trimmed.hasSuffix("}}") else { return false }
        let inner = trimmed.dropFirst(2).dropLast(2)
        return !inner.contains("{") && !inner.contains("}") && !inner.isEmpty
    }
}

extension Escaping {
    /// For a URL template: one value alone is the whole URL, taken as it is (the recipient's webhook
    /// URL); values inside a written URL are percent-encoded, so they can't add a segment or query.
    public static func url(for text: TemplateText) -> Escaping {
        text.isSingleValue ? .text : .url
    }

    /// For a text body of `contentType`: JSON (`application/json`, `application/…+json`) gets JSON
    /// string escaping, `text/html` HTML escaping, anything else none.
    public init(contentType: String) {
        let lowered = contentType.lowercased().trimmingCharacters(in: .whitespaces)
        if lowered.hasPrefix("application/json") || (lowered.hasPrefix("application/") && lowered.contains("+json")) {
            self = .jsonString
        } else {
            self = lowered.hasPrefix("text/html") ? .html : .text
        }
    }
}
