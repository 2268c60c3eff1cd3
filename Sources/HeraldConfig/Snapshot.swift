import Foundation
import HeraldCore
import HeraldFilter
import HeraldProviderModel
import HeraldTemplating

/// One consistent, validated configuration: what a process serves with until the next good reload.
public struct ConfigSnapshot: Sendable {
    /// A hash of every file read: notifications record it.
    public var version: String
    public var registry: ChannelRegistry
    /// Each channel's providers, in the order tried, compiled once when the configuration was loaded.
    public var providers: [String: [ProviderSpec]]
    public var templates: [String: MessageTemplate]
    public var rules: [RoutingRule]
    public var policies: [String: RetryPolicy]

    public init(
        version: String, registry: ChannelRegistry, providers: [String: [ProviderSpec]] = [:],
        templates: [String: MessageTemplate] = [:], rules: [RoutingRule] = [], policies: [String: RetryPolicy] = ["standard": .standard]
    ) {
        self.version = version
        self.registry = registry
        self.providers = providers
        self.templates = templates
        self.rules = rules
        self.policies = policies
    }

    /// The providers of `channel`, in the order tried (the loader refuses a channel without any).
    public func providers(for channel: String) -> [ProviderSpec] { providers[channel] ?? [] }
}

public enum RoutingStrategy: String, Sendable, Hashable {
    /// Every channel gets a delivery at once.
    case all
    /// The next channel only when the previous one failed for good.
    case fallback
}

public struct RoutingRule: Sendable {
    public var name: String
    public var filter: Filter
    public var channels: [String]
    public var strategy: RoutingStrategy
    public var location: String

    public init(name: String, filter: Filter, channels: [String], strategy: RoutingStrategy, location: String) {
        self.name = name
        self.filter = filter
        self.channels = channels
        self.strategy = strategy
        self.location = location
    }
}

/// The parts of a message one template renders for one channel category.
public struct TemplateParts: Sendable {
    public var subject: CompiledTemplate?
    public var text: CompiledTemplate?
    public var html: CompiledTemplate?
    public var title: CompiledTemplate?
    public var body: CompiledTemplate?
    public var imageURL: CompiledTemplate?

    public init(
        subject: CompiledTemplate? = nil, text: CompiledTemplate? = nil, html: CompiledTemplate? = nil,
        title: CompiledTemplate? = nil, body: CompiledTemplate? = nil, imageURL: CompiledTemplate? = nil
    ) {
        self.subject = subject
        self.text = text
        self.html = html
        self.title = title
        self.body = body
        self.imageURL = imageURL
    }
}

public struct TemplateRenderError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
}

/// A message template: per locale, per channel category, the parts to render.
public struct MessageTemplate: Sendable {
    public var id: String
    public var defaultLocale: String
    public var locales: [String: [ChannelCategory: TemplateParts]]

    public init(id: String, defaultLocale: String, locales: [String: [ChannelCategory: TemplateParts]]) {
        self.id = id
        self.defaultLocale = defaultLocale
        self.locales = locales
    }

    /// The locale variant for `requested`: exact (`ru-RU`), then its language (`ru`), then the default.
    public func locale(for requested: String?) -> String {
        guard let requested, !requested.isEmpty else { return defaultLocale }
        let normalized = requested.replacingOccurrences(of: "_", with: "-")
        if locales[normalized] != nil { return normalized }
        if let match = locales.keys.first(where: { $0.lowercased() == normalized.lowercased() }) { return match }
        let language = String(normalized.split(separator: "-").first ?? "").lowercased()
        if locales[language] != nil { return language }
        return defaultLocale
    }

    /// The locale whose parts `render` uses for `category`: the best match for `requested`, or the
    /// default locale when that one has no part for the category. Stored with each delivery.
    public func renderedLocale(category: ChannelCategory, locale requested: String?) -> String {
        let locale = locale(for: requested)
        return locales[locale]?[category] != nil ? locale : defaultLocale
    }

    /// The parts `render` would use.
    public func parts(category: ChannelCategory, locale requested: String?) -> TemplateParts? {
        locales[renderedLocale(category: category, locale: requested)]?[category]
    }

    /// The names the parts for `category` read that `context` lacks (`data.first_name`).
    public func missingNames(category: ChannelCategory, locale requested: String?, context: [String: JSONValue]) -> [String] {
        guard let parts = parts(category: category, locale: requested) else { return [] }
        let templates = [parts.subject, parts.text, parts.html, parts.title, parts.body, parts.imageURL].compactMap { $0 }
        var missing: [String] = []
        for name in templates.flatMap(\.requiredNames) where !missing.contains(name) && !name.hasPrefix("secrets.") {
            if JSONValue.object(context).value(atPath: name) == nil || JSONValue.object(context).value(atPath: name) == .null {
                missing.append(name)
            }
        }
        return missing
    }

    /// Renders the parts for `category` in the best locale for `requested`, falling back to the
    /// default locale when that locale has no part for the category.
    public func render(
        category: ChannelCategory, locale requested: String?, context: RenderContext
    ) throws(TemplateRenderError) -> MessageContent {
        guard let parts = parts(category: category, locale: requested) else {
            throw TemplateRenderError(
                description: "template '\(id)' has no '\(category.rawValue)' part (locale \(locale(for: requested)))")
        }
        return MessageContent(
            subject: parts.subject?.render(context), text: parts.text?.render(context), html: parts.html?.render(context),
            title: parts.title?.render(context), body: parts.body?.render(context),
            imageURL: parts.imageURL?.render(context))
    }
}
