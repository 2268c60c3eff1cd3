import Crypto
import Foundation
import HeraldCore
import HeraldFilter
import HeraldProviderModel
import HeraldTemplating
import Yams

/// Reads and validates a configuration directory. Nothing is used unless everything is valid.
public struct ConfigLoader: Sendable {
    public var directory: String
    /// Where channels' `settings:` take their values from (see ``DeploymentSettings``): read on
    /// every load, so a reload picks up a changed secrets file.
    public var settings: SecretResolver

    public init(directory: String, settings: SecretResolver = SecretResolver()) {
        self.directory = directory
        self.settings = settings
    }

    public static let channelsFolder = "channels.d"
    public static let templatesFolder = "templates"
    public static let routingFile = "routing.yaml"
    public static let policiesFile = "retry-policies.yaml"

    public func load() -> Result<ConfigSnapshot, ConfigErrors> {
        let diagnostics = Diagnostics()
        var hasher = SHA256()
        let policiesDocument = readDocument(Self.policiesFile, optional: true, diagnostics: diagnostics, hasher: &hasher)
        let policies = policiesDocument.map { parsePolicies($0) } ?? ["standard": .standard]

        var channels: [ChannelDefinition] = []
        var providers: [String: [ProviderSpec]] = [:]
        var channelLocations: [String: String] = [:]
        for file in yamlFiles(in: Self.channelsFolder, diagnostics: diagnostics) {
            let errorsBefore = diagnostics.errors.count
            guard let document = readDocument(file, optional: false, diagnostics: diagnostics, hasher: &hasher),
                let (channel, channelProviders, nameValue) = parseChannel(document, policies: policies, hasher: &hasher)
            else {
                // Never drop a file silently: if no error says why, say that it was not understood.
                if diagnostics.errors.count == errorsBefore {
                    diagnostics.error(file, line: 1, column: 1, "the channel could not be read")
                }
                continue
            }
            if let first = channelLocations[channel.name] {
                nameValue.error("channel '\(channel.name)' is already defined at \(first)")
                continue
            }
            channelLocations[channel.name] = nameValue.location
            channels.append(channel)
            providers[channel.name] = channelProviders
        }
        let registry = ChannelRegistry(channels)

        var templates: [String: MessageTemplate] = [:]
        var templateLocations: [String: String] = [:]
        for file in yamlFiles(in: Self.templatesFolder, diagnostics: diagnostics) {
            guard let document = readDocument(file, optional: false, diagnostics: diagnostics, hasher: &hasher),
                let (template, idValue) = parseTemplate(document, hasher: &hasher)
            else { continue }
            if let first = templateLocations[template.id] {
                idValue.error("template '\(template.id)' is already defined at \(first)")
                continue
            }
            templateLocations[template.id] = idValue.location
            templates[template.id] = template
        }

        let routingDocument = readDocument(Self.routingFile, optional: true, diagnostics: diagnostics, hasher: &hasher)
        let rules = routingDocument.map { parseRules($0, registry: registry) } ?? []

        guard diagnostics.errors.isEmpty else { return .failure(ConfigErrors(errors: diagnostics.errors)) }
        let version = Hex.encode(hasher.finalize()).prefix(12)
        return .success(ConfigSnapshot(
            version: String(version), registry: registry, providers: providers, templates: templates, rules: rules, policies: policies))
    }

    // MARK: Files

    private func yamlFiles(in folder: String, diagnostics: Diagnostics) -> [String] {
        let path = (directory as NSString).appendingPathComponent(folder)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return []
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }.sorted()
            .map { "\(folder)/\($0)" }
    }

    /// Parses one file; nil (with the error recorded) when it is missing or not YAML.
    private func readDocument(
        _ file: String, optional: Bool, diagnostics: Diagnostics, hasher: inout SHA256
    ) -> YAMLValue? {
        let path = (directory as NSString).appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: path) else {
            if !optional { diagnostics.error(file, line: 1, column: 1, "cannot read the file") }
            return nil
        }
        hasher.update(data: Data(file.utf8))
        hasher.update(data: data)
        guard let text = String(data: data, encoding: .utf8) else {
            diagnostics.error(file, line: 1, column: 1, "the file is not UTF-8 text")
            return nil
        }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                diagnostics.error(file, line: 1, column: 1, "the file is empty")
                return nil
            }
            return YAMLValue(node: node, file: file, diagnostics: diagnostics)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                diagnostics.error(file, line: mark.line, column: mark.column, "YAML syntax error: \(problem)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                diagnostics.error(
                    file, line: context.mark.line, column: context.mark.column,
                    "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "'\($0)'" }.joined(separator: ", "))")
            default:
                diagnostics.error(file, line: 1, column: 1, "YAML error: \(error)")
            }
            return nil
        } catch {
            diagnostics.error(file, line: 1, column: 1, "YAML error: \(error)")
            return nil
        }
    }

    // MARK: Retry policies

    private func parsePolicies(_ document: YAMLValue) -> [String: RetryPolicy] {
        var policies: [String: RetryPolicy] = ["standard": .standard]
        guard let root = document.mapping("the retry policies file", allowed: ["policies"]),
            let list = root.required("policies")?.mapping("policies", allowed: [])
        else { return policies }
        for (name, _, value) in list.entries {
            let what = "policy '\(name)'"
            guard let policy = value.mapping(what, allowed: [
                "max_attempts", "initial_delay", "multiplier", "max_delay", "jitter", "retry_ambiguous",
            ]) else { continue }
            let maxAttempts = policy.required("max_attempts")?.int("max_attempts", in: 1...100)
            let initialDelay = policy.required("initial_delay")?.duration("initial_delay")
            let multiplier = policy["multiplier"].map { $0.double("multiplier", in: 1...100) } ?? 2
            let maxDelay = policy["max_delay"].map { $0.duration("max_delay") } ?? .seconds(3600)
            let jitter = policy["jitter"].map { $0.double("jitter", in: 0...1) } ?? 0
            let retryAmbiguous = policy["retry_ambiguous"].map { $0.bool("retry_ambiguous") } ?? true
            guard let maxAttempts, let initialDelay, let multiplier, let maxDelay, let jitter, let retryAmbiguous else {
                continue
            }
            if maxDelay < initialDelay {
                policy["max_delay"]?.error("max_delay must not be shorter than initial_delay")
                continue
            }
            policies[name] = RetryPolicy(
                name: name, maxAttempts: maxAttempts, initialDelay: initialDelay, multiplier: multiplier,
                maxDelay: maxDelay, retryAmbiguous: retryAmbiguous, jitter: jitter)
        }
        return policies
    }

    // MARK: Channels

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 63 else { return false }
        func allowed(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) }
        return allowed(first) && name.unicodeScalars.allSatisfy { allowed($0) || $0 == "-" || $0 == "_" }
    }

    private func parseChannel(
        _ document: YAMLValue, policies: [String: RetryPolicy], hasher: inout SHA256
    ) -> (ChannelDefinition, [ProviderSpec], YAMLValue)? {
        guard let channel = document.mapping("a channel", allowed: [
            "name", "category", "recipient", "recipient_format", "concurrency", "rate_limit", "rate_burst", "retry", "timeout",
            "providers", "max_in_flight_per_host", "settings", "breaker",
        ]) else { return nil }
        // nil: invalid (errors recorded).
        let deploymentSettings = channel["settings"].map { DeploymentSettings.parse($0, resolver: settings) } ?? DeploymentSettings.empty
        for (name, value) in (deploymentSettings?.values ?? [:]).sorted(by: { $0.key < $1.key }) {
            // A changed setting is a new configuration version: providers are rebuilt with it.
            hasher.update(data: Data("\u{0}setting \(document.file) \(name)=\(value)".utf8))
        }
        let nameValue = channel.required("name")
        var name = nameValue?.string("name")
        if let text = name, !Self.isValidName(text) {
            nameValue?.error("channel name '\(text)' must be lower-case letters, digits, '-' and '_' (at most 63)")
            name = nil
        }
        let recipient = channel.required("recipient")?.string("recipient")
        let format: RecipientField.Format? =
            if let value = channel["recipient_format"] {
                value.string("recipient_format").flatMap { text in
                    RecipientField.Format(rawValue: text) ?? {
                        value.error("recipient_format must be one of: any, email, phone, url, web_push_subscription")
                        return nil
                    }()
                }
            } else {
                recipient.map(Self.defaultFormat)
            }
        let category: ChannelCategory? =
            if let value = channel["category"] {
                value.string("category").flatMap { text in
                    ChannelCategory(rawValue: text) ?? {
                        value.error("category must be one of: \(ChannelCategory.allCases.map(\.rawValue).joined(separator: ", "))")
                        return nil
                    }()
                }
            } else {
                recipient.map(Self.defaultCategory)
            }
        let concurrency = channel["concurrency"].map { $0.int("concurrency", in: 1...4096) } ?? 16
        // nil: invalid (error recorded); .some(nil): no limit.
        let rateLimit: RateLimit?? = channel["rate_limit"].map { value -> RateLimit?? in
            guard let text = value.string("rate_limit"), let limit = Self.parseRate(text) else {
                value.error("rate_limit must look like 30/s, 600/m or 5000/h")
                return .none
            }
            return .some(limit)
        } ?? .some(nil)
        // Attempts that may start at once after a quiet spell (the provider's own burst, e.g. Synapse's 10).
        let rateBurst: Int? = channel["rate_burst"].map { value -> Int? in
            if channel["rate_limit"] == nil {
                value.error("rate_burst goes with rate_limit")
                return nil
            }
            return value.int("rate_burst", in: 1...100_000)
        } ?? 1
        let timeout = channel["timeout"].map { $0.duration("timeout") } ?? .seconds(15)
        // nil: invalid (error recorded); .some(nil): the default for the channel's recipient.
        let perHost: Int?? = channel["max_in_flight_per_host"].map { value -> Int?? in
            value.int("max_in_flight_per_host", in: 1...4096).map { .some($0) } ?? .none
        } ?? .some(nil)
        // nil: invalid (error recorded); .some(nil): off.
        let breaker: BreakerSettings?? = channel["breaker"].map(Self.parseBreaker) ?? .some(.standard)
        var retry: RetryPolicy? = policies["standard"]
        if let value = channel["retry"], let policyName = value.string("retry") {
            retry = policies[policyName]
            if retry == nil {
                value.error("unknown retry policy '\(policyName)'; defined: \(policies.keys.sorted().joined(separator: ", "))")
            }
        }
        var providers: [ProviderSpec] = []
        // With invalid settings the providers are not read: their errors would only echo the settings'.
        let providersValue = channel.required("providers").flatMap { value in
            deploymentSettings.map { value.child($0.substitute(value.node, file: value.file, diagnostics: value.diagnostics)) }
        }
        if let list = providersValue?.list("providers") {
            if list.isEmpty { channel["providers"]?.error("providers must list at least one provider") }
            var seen = Set<String>()
            for item in list {
                let errorsBefore = item.diagnostics.errors.count
                guard let provider = ProviderParser.parse(item) else {
                    if item.diagnostics.errors.count == errorsBefore { item.error("the provider could not be read") }
                    continue
                }
                if !seen.insert(provider.name).inserted {
                    item.error("provider '\(provider.name)' is listed twice")
                    continue
                }
                providers.append(provider)
            }
        }
        guard let name, let nameValue, let recipient, let format, let category, let concurrency, var rateLimit,
            let rateBurst, let timeout, let retry, let perHost, let breaker
        else { return nil }
        rateLimit?.burst = rateBurst
        return (
            ChannelDefinition(
                name: name, category: category, recipient: RecipientField(name: recipient, format: format),
                concurrency: concurrency, rateLimit: rateLimit, timeout: timeout, retry: retry,
                maxInFlightPerHost: perHost.map { .some($0) } ?? .none, breaker: breaker,
                // Only SMTP providers write MIME parts; a failover to an HTTP e-mail API would drop them.
                carriesAttachments: category == .email && providers.allSatisfy {
                    if case .smtp = $0.transport { true } else { false }
                }),
            providers, nameValue
        )
    }

    /// `breaker: off`, `breaker: on` (the defaults) or a mapping of the keys to change:
    /// `{failure_rate: 50%, window: 30s, min_requests: 10, open_for: 30s, probes: 1}`.
    /// nil: invalid (errors recorded); .some(nil): off.
    static func parseBreaker(_ value: YAMLValue) -> BreakerSettings?? {
        if case .scalar(let scalar) = value.node {
            switch scalar.string.lowercased() {
            case "off", "false": return .some(nil)
            case "on", "true": return .some(.standard)
            default:
                value.error("breaker must be off, on, or a mapping of failure_rate, window, min_requests, open_for, probes")
                return .none
            }
        }
        guard let mapping = value.mapping("breaker", allowed: ["failure_rate", "window", "min_requests", "open_for", "probes"]) else {
            return .none
        }
        let defaults = BreakerSettings.standard
        let rate = mapping["failure_rate"].map(parseFailureRate) ?? defaults.failureRate
        let window = mapping["window"].map { $0.duration("window") } ?? defaults.window
        let minRequests = mapping["min_requests"].map { $0.int("min_requests", in: 1...100_000) } ?? defaults.minRequests
        let openFor = mapping["open_for"].map { $0.duration("open_for") } ?? defaults.openFor
        let probes = mapping["probes"].map { $0.int("probes", in: 1...1000) } ?? defaults.probes
        // Ten buckets of at least 10 ms each: a shorter window can't be measured in buckets.
        if let window, window < .milliseconds(100) {
            mapping["window"]?.error("window must be at least 100ms")
            return .none
        }
        if let openFor, openFor < .milliseconds(100) {
            mapping["open_for"]?.error("open_for must be at least 100ms")
            return .none
        }
        guard let rate, let window, let minRequests, let openFor, let probes else { return .none }
        return .some(BreakerSettings(failureRate: rate, window: window, minRequests: minRequests, openFor: openFor, probes: probes))
    }

    /// `50%` (1–100 %), or a fraction such as 0.5.
    static func parseFailureRate(_ value: YAMLValue) -> Double? {
        if case .scalar(let scalar) = value.node, scalar.string.hasSuffix("%") {
            guard let percent = Double(scalar.string.dropLast().trimmingCharacters(in: .whitespaces)), (1...100).contains(percent) else {
                value.error("failure_rate must be a percentage from 1% to 100%, such as 50%")
                return nil
            }
            return percent / 100
        }
        guard let fraction = value.double("failure_rate", in: 0.01...1) else { return nil }
        return fraction
    }

    static func defaultFormat(for field: String) -> RecipientField.Format {
        if field == "email" || field.hasSuffix("_email") { return .email }
        if field == "phone" || field.hasSuffix("_phone") { return .phone }
        if field.hasSuffix("_url") { return .url }
        if field == "web_push" || field.hasSuffix("push_subscription") { return .webPushSubscription }
        return .any
    }

    static func defaultCategory(for field: String) -> ChannelCategory {
        switch defaultFormat(for: field) {
        case .email: .email
        case .phone: .sms
        case .url: .webhook
        case .webPushSubscription: .push
        case .any: field.contains("push") || field.contains("token") ? .push : .chat
        }
    }

    static func parseRate(_ text: String) -> RateLimit? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let count = Int(parts[0].trimmingCharacters(in: .whitespaces)), count > 0 else { return nil }
        switch parts[1].trimmingCharacters(in: .whitespaces) {
        case "s": return RateLimit(count: count, per: .seconds(1))
        case "m": return RateLimit(count: count, per: .seconds(60))
        case "h": return RateLimit(count: count, per: .seconds(3600))
        default: return nil
        }
    }

    // MARK: Templates

    static let partsByCategory: [ChannelCategory: [String]] = [
        .email: ["subject", "text", "html", "text_file", "html_file"],
        .sms: ["text", "text_file", "image_url"],
        .push: ["title", "body", "image_url"],
        .chat: ["text", "text_file", "image_url"],
        .webhook: ["subject", "text", "html", "text_file", "html_file"],
    ]

    private func parseTemplate(_ document: YAMLValue, hasher: inout SHA256) -> (MessageTemplate, YAMLValue)? {
        guard let root = document.mapping("a template", allowed: ["id", "description", "default_locale", "locales"]) else {
            return nil
        }
        let idValue = root.required("id")
        let id = idValue?.string("id")
        _ = root["description"]?.string("description")
        let defaultLocale = root.required("default_locale")?.string("default_locale")
        var locales: [String: [ChannelCategory: TemplateParts]] = [:]
        if let localeMap = root.required("locales")?.mapping("locales", allowed: []) {
            for (locale, _, value) in localeMap.entries {
                guard let categories = value.mapping(
                    "locale '\(locale)'", allowed: ChannelCategory.allCases.map(\.rawValue))
                else { continue }
                var variant: [ChannelCategory: TemplateParts] = [:]
                for (categoryName, _, partsValue) in categories.entries {
                    guard let category = ChannelCategory(rawValue: categoryName),
                        let parts = partsValue.mapping(
                            "the \(categoryName) part of locale '\(locale)'", allowed: Self.partsByCategory[category] ?? [])
                    else { continue }
                    variant[category] = parseParts(parts, hasher: &hasher)
                }
                locales[locale] = variant
            }
            if let defaultLocale, locales[defaultLocale] == nil, !localeMap.entries.isEmpty {
                root["default_locale"]?.error("default_locale '\(defaultLocale)' is not one of the locales: \(localeMap.keys.joined(separator: ", "))")
                return nil
            }
        }
        guard let id, let idValue, let defaultLocale else { return nil }
        return (MessageTemplate(id: id, defaultLocale: defaultLocale, locales: locales), idValue)
    }

    private func parseParts(_ parts: YAMLMapping, hasher: inout SHA256) -> TemplateParts {
        func compile(_ key: String, _ escaping: Escaping) -> CompiledTemplate? {
            if let value = parts[key], let text = value.template(key) {
                // An image URL that is exactly one value is taken whole; parts of a URL are percent-encoded.
                let escaping = escaping == .url ? Escaping.url(for: text) : escaping
                return compileReporting(text, escaping: escaping, value: value)
            }
            let fileKey = key + "_file"
            guard let value = parts[fileKey], let name = value.string(fileKey) else { return nil }
            let relative = "\(Self.templatesFolder)/\(name)"
            let path = (directory as NSString).appendingPathComponent(relative)
            guard !name.contains(".."), let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)
            else {
                value.error("cannot read template file '\(relative)'")
                return nil
            }
            hasher.update(data: Data(relative.utf8))
            hasher.update(data: data)
            return compileReporting(TemplateText(text, location: "\(relative):1:1"), escaping: escaping, value: value)
        }
        return TemplateParts(
            subject: compile("subject", .text), text: compile("text", .text), html: compile("html", .html),
            title: compile("title", .text), body: compile("body", .text), imageURL: compile("image_url", .url))
    }

    // MARK: Routing rules

    private func parseRules(_ document: YAMLValue, registry: ChannelRegistry) -> [RoutingRule] {
        guard let root = document.mapping("the routing file", allowed: ["rules"]),
            let list = root.required("rules")?.list("rules")
        else { return [] }
        var rules: [RoutingRule] = []
        var names = Set<String>()
        for (index, item) in list.enumerated() {
            guard let rule = item.mapping("rule \(index + 1)", allowed: ["name", "match", "channels", "strategy"]) else {
                continue
            }
            let nameValue = rule.required("name")
            let name = nameValue?.string("name")
            if let name, !names.insert(name).inserted { nameValue?.error("rule '\(name)' is defined twice") }
            var filter: Filter?
            if let match = rule.required("match") {
                if case .mapping = match.node {
                    do {
                        filter = try Filter(match.json())
                    } catch {
                        match.error("invalid match filter: \(error)")
                    }
                } else {
                    match.error("match must be a mapping (a filter document), not \(match.kindName)")
                }
            }
            var channels: [String]?
            if let value = rule.required("channels"), let items = value.list("channels") {
                channels = []
                if items.isEmpty { value.error("channels must name at least one channel") }
                for item in items {
                    guard let channel = item.string("a channel") else { continue }
                    if registry[channel] == nil {
                        item.error("unknown channel '\(channel)'; defined: \(registry.names.joined(separator: ", "))")
                    } else {
                        channels?.append(channel)
                    }
                }
            }
            var strategy = RoutingStrategy.all
            if let value = rule["strategy"], let text = value.string("strategy") {
                if let parsed = RoutingStrategy(rawValue: text) {
                    strategy = parsed
                } else {
                    value.error("strategy must be 'all' or 'fallback', not '\(text)'")
                }
            }
            if let name, let filter, let channels, let location = nameValue?.location {
                rules.append(RoutingRule(name: name, filter: filter, channels: channels, strategy: strategy, location: location))
            }
        }
        return rules
    }
}

/// Compiles a template, recording a failure against the YAML value it came from, at the position in
/// the file where the problem is (exact for one-line templates; block scalars by line).
func compileReporting(_ text: TemplateText, escaping: Escaping, value: YAMLValue) -> CompiledTemplate? {
    do {
        return try CompiledTemplate(text, escaping: escaping)
    } catch {
        let parts = text.location.split(separator: ":")
        guard parts.count >= 3, let line = Int(parts[parts.count - 2]), let column = Int(parts[parts.count - 1]) else {
            value.error(error.message)
            return nil
        }
        let file = parts.dropLast(2).joined(separator: ":")
        if let position = error.position {
            let absoluteLine = line + position.line - 1
            let absoluteColumn = position.line == 1 ? column + position.column - 1 : position.column
            value.diagnostics.error(file, line: absoluteLine, column: absoluteColumn, error.message)
        } else {
            value.diagnostics.error(file, line: line, column: column, error.message)
        }
        return nil
    }
}
