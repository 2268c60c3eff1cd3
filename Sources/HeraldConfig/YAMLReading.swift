import Foundation
import HeraldCore
import HeraldTemplating
import Yams

/// One configuration error, located in its file.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Relative to the configuration directory.
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Every error found in a configuration directory; nothing of it is used.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Collects errors while a directory is read, so one pass reports them all.
final class Diagnostics {
    private(set) var errors: [ConfigError] = []

    func error(_ file: String, _ node: Node?, _ message: String) {
        errors.append(ConfigError(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, message: message))
    }

    func error(_ file: String, line: Int, column: Int, _ message: String) {
        errors.append(ConfigError(file: file, line: line, column: column, message: message))
    }
}

/// A YAML value in a file, with what is needed to report errors on it.
struct YAMLValue {
    let node: Node
    let file: String
    let diagnostics: Diagnostics

    var location: String { "\(file):\(node.mark?.line ?? 1):\(node.mark?.column ?? 1)" }

    func error(_ message: String) {
        diagnostics.error(file, node, message)
    }

    /// Where a template's text begins: quoted scalars start one column after the quote.
    var templateLocation: String {
        guard case .scalar(let scalar) = node else { return location }
        let line = node.mark?.line ?? 1
        let column = node.mark?.column ?? 1
        switch scalar.style {
        case .singleQuoted, .doubleQuoted: return "\(file):\(line):\(column + 1)"
        case .literal, .folded: return "\(file):\(line + 1):\(column)"
        default: return location
        }
    }

    var kindName: String {
        switch node {
        case .scalar: "a scalar"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    func child(_ node: Node) -> YAMLValue { YAMLValue(node: node, file: file, diagnostics: diagnostics) }

    /// A string scalar (any scalar reads as its text).
    func string(_ what: String) -> String? {
        guard case .scalar(let scalar) = node else {
            error("\(what) must be a string, not \(kindName)")
            return nil
        }
        return scalar.string
    }

    func template(_ what: String) -> TemplateText? {
        string(what).map { TemplateText($0, location: templateLocation) }
    }

    func int(_ what: String, in range: ClosedRange<Int>) -> Int? {
        guard case .scalar = node, node.tag.rawValue == Tag.Name.int.rawValue, let value = node.int else {
            error("\(what) must be a whole number")
            return nil
        }
        guard range.contains(value) else {
            error("\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    func double(_ what: String, in range: ClosedRange<Double>) -> Double? {
        guard case .scalar = node, node.tag.rawValue == Tag.Name.int.rawValue || node.tag.rawValue == Tag.Name.float.rawValue, let value = node.float else {
            error("\(what) must be a number")
            return nil
        }
        guard range.contains(value) else {
            error("\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    func bool(_ what: String) -> Bool? {
        guard case .scalar = node, node.tag.rawValue == Tag.Name.bool.rawValue, let value = node.bool else {
            error("\(what) must be true or false")
            return nil
        }
        return value
    }

    /// `250ms`, `10s`, `5m`, `1h`.
    func duration(_ what: String) -> Duration? {
        guard let text = string(what), let duration = Self.parseDuration(text) else {
            if case .scalar = node { error("\(what) must be a duration such as 250ms, 10s, 5m or 1h") }
            return nil
        }
        return duration
    }

    static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, milliseconds) in units where text.hasSuffix(suffix) {
            guard let count = Int64(text.dropLast(suffix.count)), count >= 0 else { return nil }
            return .milliseconds(count * milliseconds)
        }
        return nil
    }

    func list(_ what: String) -> [YAMLValue]? {
        guard case .sequence(let sequence) = node else {
            error("\(what) must be a list, not \(kindName)")
            return nil
        }
        return sequence.map(child)
    }

    func mapping(_ what: String, allowed: [String]) -> YAMLMapping? {
        guard case .mapping(let mapping) = node else {
            error("\(what) must be a mapping (key: value), not \(kindName)")
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: YAMLValue)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                diagnostics.error(file, key, "keys of \(what) must be strings")
                continue
            }
            if !allowed.isEmpty && !allowed.contains(name) {
                var message = "unknown key '\(name)' in \(what); expected one of: \(allowed.joined(separator: ", "))"
                if let suggestion = Self.closest(to: name, in: allowed) { message = "unknown key '\(name)' in \(what) (did you mean '\(suggestion)'?); expected one of: \(allowed.joined(separator: ", "))" }
                diagnostics.error(file, key, message)
                continue
            }
            entries.append((name, key, child(value)))
        }
        return YAMLMapping(what: what, node: self, entries: entries)
    }

    /// The value as JSON, for filters and literal body parts.
    func json() -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: return .null
            case Tag.Name.bool.rawValue: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case Tag.Name.int.rawValue: return node.int.map { .integer(Int64($0)) } ?? .string(scalar.string)
            case Tag.Name.float.rawValue: return node.float.map(JSONValue.double) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            return .array(sequence.map { child($0).json() })
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping { object[key.string ?? ""] = child(value).json() }
            return .object(object)
        case .alias:
            return .null
        }
    }

    static func closest(to name: String, in candidates: [String]) -> String? {
        func distance(_ a: String, _ b: String) -> Int {
            let a = Array(a), b = Array(b)
            var previous = Array(0...b.count)
            for i in 1...max(1, a.count) where !a.isEmpty {
                var current = [i] + Array(repeating: 0, count: b.count)
                for j in 1...max(1, b.count) where !b.isEmpty {
                    current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                }
                previous = current
            }
            return previous[b.count]
        }
        let best = candidates.map { ($0, distance(name, $0)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(2, name.count / 3) else { return nil }
        return best.0
    }
}

/// A mapping whose keys were checked against the allowed set.
struct YAMLMapping {
    let what: String
    let node: YAMLValue
    let entries: [(key: String, keyNode: Node, value: YAMLValue)]

    subscript(key: String) -> YAMLValue? { entries.first { $0.key == key }?.value }

    func required(_ key: String) -> YAMLValue? {
        if let value = self[key] { return value }
        node.error("missing required key '\(key)' in \(what)")
        return nil
    }

    var keys: [String] { entries.map(\.key) }
}
