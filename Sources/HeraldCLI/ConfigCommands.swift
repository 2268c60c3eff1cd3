import ArgumentParser
import Foundation
import HeraldConfig
import HeraldCore
import HeraldTemplating

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with the configuration directory.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration directory; list every error as file:line:column (exit 1).")

        @Argument(help: "The directory (default: HERALD_CONFIG_DIR, else the current directory).")
        var directory: String?

        func run() async throws {
            let directory = directory ?? HeraldEnvironment().configDirectory
            switch ConfigLoader(directory: directory).load() {
            case .success(let snapshot):
                print("""
                    \(directory): ok (version \(snapshot.version)): \(snapshot.registry.channels.count) channels, \
                    \(snapshot.templates.count) templates, \(snapshot.rules.count) routing rules, \
                    \(snapshot.policies.count) retry policies
                    """)
            case .failure(let errors):
                for error in errors.errors { print(error) }
                print("\(errors.errors.count) error(s)")
                throw ExitCode(1)
            }
        }
    }
}

/// Reads a JSON file given on the command line.
func readJSONFile(_ path: String) throws -> JSONValue {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    do {
        return try JSONDecoder().decode(JSONValue.self, from: data)
    } catch {
        throw ValidationError("\(path) is not valid JSON: \(error)")
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render", abstract: "Render a template with data, as a channel would send it.")

    @Argument(help: "The template id.")
    var template: String

    @Option(help: "A JSON file with the template data.")
    var data: String

    @Option(help: "Render the part for this channel's category (default: every part the template has).")
    var channel: String?

    @Option(help: "The recipient's locale (e.g. ru-RU).")
    var locale: String?

    func run() async throws {
        let (_, snapshot) = try HeraldEnvironment().loadConfiguration()
        guard let messageTemplate = snapshot.templates[template] else {
            throw ValidationError("unknown template '\(template)'; known: \(snapshot.templates.keys.sorted().joined(separator: ", "))")
        }
        let values = try readJSONFile(data)
        let context = RenderContext(["data": values, "to": .object(locale.map { ["locale": .string($0)] } ?? [:])])
        var categories = ChannelCategory.allCases.filter { category in
            messageTemplate.locales.values.contains { $0[category] != nil }
        }
        if let channel {
            guard let definition = snapshot.registry[channel] else { throw ValidationError("unknown channel '\(channel)'") }
            categories = [definition.category]
        }
        var rendered: [String: MessageContent] = [:]
        for category in categories {
            rendered[category.rawValue] = try messageTemplate.render(category: category, locale: locale, context: context)
        }
        print("locale: \(messageTemplate.locale(for: locale))")
        try printJSON(rendered)
    }
}

struct RouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route", abstract: "Show which rule a request matches and which channels it goes to.")

    @Option(help: "A JSON file with the request body.")
    var request: String

    func run() async throws {
        let (_, snapshot) = try HeraldEnvironment().loadConfiguration()
        let body = try readJSONFile(request)
        switch snapshot.validator.validate(body) {
        case .failure(let failure):
            for error in failure.errors { print("invalid: \(error)") }
            throw ExitCode(1)
        case .success(let valid):
            switch snapshot.plan(valid) {
            case .failure(let failure):
                for error in failure.errors { print("not routable: \(error)") }
                throw ExitCode(1)
            case .success(let plan):
                print("rule: \(plan.rule ?? "(none: the request names its channels)")")
                print("strategy: \(plan.strategy.rawValue)")
                print("channels: \(plan.channels.joined(separator: ", "))")
                try printJSON(plan.messages)
            }
        }
    }
}
