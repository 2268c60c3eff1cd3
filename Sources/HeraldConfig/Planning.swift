import HeraldCore
import HeraldFilter
import HeraldTemplating

/// What a notification turns into under one snapshot: its channels, in order, and the message for each.
public struct DeliveryPlan: Sendable, Hashable {
    public var channels: [String]
    public var strategy: RoutingStrategy
    /// The rule that chose the channels; nil when the request named them.
    public var rule: String?
    public var messages: [String: MessageContent]
    /// Per channel, the template locale its message was rendered in (none for inline messages).
    public var locales: [String: String] = [:]
}

extension ConfigSnapshot {
    /// The request as the validator for this snapshot sees it.
    public var validator: RequestValidator {
        RequestValidator(registry: registry, templates: Set(templates.keys), hasRoutingRules: !rules.isEmpty)
    }

    /// The first rule whose filter matches the request document.
    public func route(_ document: JSONValue) -> RoutingRule? {
        rules.first { $0.filter.matches(document) }
    }

    /// Routes a validated request and renders its messages. Errors read like validation errors.
    public func plan(_ request: NotificationRequest) -> Result<DeliveryPlan, RequestValidationError> {
        var channels = request.channels
        var strategy = RoutingStrategy.all
        var ruleName: String?
        if channels.isEmpty {
            guard let rule = route(request.document) else {
                return .failure(.init(errors: [FieldError(
                    field: "channel", message: "no routing rule matches this request; name 'channel' or 'channels'")]))
            }
            channels = rule.channels
            strategy = rule.strategy
            ruleName = rule.name
            let recipientErrors = validator.recipientErrors(channels: channels, to: request.to)
            // With fallback, a channel the recipient has no address for is skipped rather than refused.
            if strategy == .fallback {
                channels = channels.filter { channel in
                    validator.recipientErrors(channels: [channel], to: request.to).isEmpty
                }
                if channels.isEmpty { return .failure(.init(errors: recipientErrors)) }
            } else if !recipientErrors.isEmpty {
                return .failure(.init(errors: recipientErrors))
            }
        }
        var messages: [String: MessageContent] = [:]
        var renderedLocales: [String: String] = [:]
        for channelName in channels {
            guard let channel = registry[channelName] else { continue }
            guard let templateID = request.template else {
                messages[channelName] = request.message
                continue
            }
            guard let template = templates[templateID] else {
                return .failure(.init(errors: [FieldError(field: "template", message: "unknown template '\(templateID)'")]))
            }
            let values: [String: JSONValue] = ["data": request.data, "to": .object(request.to), "metadata": request.metadata]
            let missing = template.missingNames(category: channel.category, locale: request.to["locale"]?.stringValue, context: values)
            if !missing.isEmpty {
                return .failure(.init(errors: missing.map { name in
                    FieldError(
                        field: name,
                        message: "template '\(templateID)' uses {{\(name)}} for channel '\(channelName)', and the request does not give it")
                }))
            }
            let context = RenderContext(values)
            do {
                messages[channelName] = try template.render(
                    category: channel.category, locale: request.to["locale"]?.stringValue, context: context)
                renderedLocales[channelName] = template.renderedLocale(
                    category: channel.category, locale: request.to["locale"]?.stringValue)
            } catch {
                return .failure(.init(errors: [FieldError(field: "template", message: "\(error) for channel '\(channelName)'")]))
            }
        }
        return .success(DeliveryPlan(
            channels: channels, strategy: strategy, rule: ruleName, messages: messages, locales: renderedLocales))
    }
}
