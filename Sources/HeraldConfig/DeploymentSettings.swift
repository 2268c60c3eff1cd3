import Foundation
import HeraldCore
import Yams

/// A channel's deployment settings: endpoints, ports, TLS modes — what differs between deployments
/// but is not secret. A channel file declares them with a type and a default:
///
/// ```yaml
/// settings:
///   SMTP_HOST: {type: host, default: localhost}
///   SMTP_PORT: {type: port, default: 587}
///   SMTP_STARTTLS: {type: [required, opportunistic, none], default: required}
/// providers:
///   - url: "smtp://{{settings.SMTP_HOST}}:{{settings.SMTP_PORT}}"
///     starttls: "{{settings.SMTP_STARTTLS}}"
/// ```
///
/// Each value comes from where secrets come from (`$HERALD_SECRETS_DIR/NAME`, `NAME_FILE`, the
/// environment variable `NAME`), else the default; it is checked against its type and written
/// into the provider's values when the configuration is loaded (and again on every reload), so a
/// bad value is a configuration error at `file:line:column`, never a failed attempt. Because every
/// type refuses `{`, `}` and white space, a value can't add template syntax to what it lands in.
struct DeploymentSettings {
    enum Kind: Equatable {
        /// A DNS name (non-ASCII labels become A-labels), an IPv4 address or an IPv6 address (bracketed).
        case host
        /// 1–65535.
        case port
        /// `http://` or `https://` host, optional port and path; no query, fragment or user info;
        /// a trailing `/` is dropped, so `{{settings.X}}/path` reads naturally.
        case url
        /// An absolute path, or empty for "none".
        case file
        /// One of the listed words.
        case oneOf([String])

        var name: String {
            switch self {
            case .host: "host"
            case .port: "port"
            case .url: "url"
            case .file: "file"
            case .oneOf(let words): "one of \(words.joined(separator: ", "))"
            }
        }
    }

    /// Resolved values by name; also what the configuration version hashes.
    private(set) var values: [String: String] = [:]

    static let empty = DeploymentSettings()

    /// Reads the `settings:` mapping of a channel file, resolving every value; errors are recorded.
    /// nil when a setting is invalid.
    static func parse(_ value: YAMLValue, resolver: SecretResolver) -> DeploymentSettings? {
        guard let mapping = value.mapping("settings", allowed: []) else { return nil }
        var settings = DeploymentSettings()
        var valid = true
        var declared: [(name: String, kind: Kind)] = []
        var pending: [(name: String, kind: Kind, declaration: YAMLValue, defaultValue: YAMLValue)] = []
        for (name, keyNode, item) in mapping.entries {
            guard SecretResolver.isValidName(name) else {
                value.diagnostics.error(value.file, keyNode, "setting name '\(name)' must be letters, digits and '_'")
                valid = false
                continue
            }
            guard let declaration = item.mapping("setting \(name)", allowed: ["type", "default"]),
                let typeValue = declaration.required("type"), let defaultValue = declaration.required("default"),
                let kind = parseKind(typeValue, name: name)
            else {
                valid = false
                continue
            }
            declared.append((name, kind))
            pending.append((name, kind, item, defaultValue))
        }
        for (name, kind, declaration, defaultValue) in pending {
            let portSetting = declared.filter { $0.kind == .port }.map(\.name)
            if let found = resolver.lookup(name), !found.value.trimmingCharacters(in: .whitespaces).isEmpty {
                switch check(found.value.trimmingCharacters(in: .whitespacesAndNewlines), kind, portSettings: portSetting) {
                case .success(let normalized): settings.values[name] = normalized
                case .failure(let problem):
                    // The value is not shown: the same sources hold secrets.
                    declaration.error("setting \(name) from \(found.origin) is not a valid \(kind.name): \(problem)")
                    valid = false
                }
            } else {
                guard let text = defaultValue.string("the default of \(name)") else {
                    valid = false
                    continue
                }
                switch check(text, kind, portSettings: portSetting) {
                case .success(let normalized): settings.values[name] = normalized
                case .failure(let problem):
                    defaultValue.error("the default of \(name) is not a valid \(kind.name): \(problem)")
                    valid = false
                }
            }
        }
        return valid ? settings : nil
    }

    static func parseKind(_ value: YAMLValue, name: String) -> Kind? {
        if case .sequence = value.node {
            let words = (value.list("type") ?? []).compactMap { $0.string("a word of type") }
            guard !words.isEmpty, words.allSatisfy({ !$0.isEmpty && !$0.contains(where: { "{} \t".contains($0) }) }) else {
                value.error("type of \(name): a list of words without spaces or braces")
                return nil
            }
            return .oneOf(words)
        }
        switch value.string("type") {
        case "host"?: return .host
        case "port"?: return .port
        case "url"?: return .url
        case "file"?: return .file
        case let other?:
            value.error("type of \(name) must be host, port, url, file or a list of words, not '\(other)'")
            return nil
        case nil: return nil
        }
    }

    struct Problem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The value as it will be written (hosts as A-labels, URLs without a trailing `/`), or why not.
    static func check(_ text: String, _ kind: Kind, portSettings: [String] = []) -> Result<String, Problem> {
        if text.contains(where: { $0 == "{" || $0 == "}" || $0.isWhitespace || $0.unicodeScalars.contains { $0.value < 0x20 } }) {
            return .failure(Problem("it has white space, a control character or a brace"))
        }
        switch kind {
        case .port:
            guard let port = Int(text), (1...65535).contains(port) else { return .failure(Problem("a port is 1-65535")) }
            return .success(String(port))
        case .host:
            return checkHost(text, portSettings: portSettings)
        case .file:
            if text.isEmpty { return .success("") }
            guard text.hasPrefix("/") else { return .failure(Problem("a file must be an absolute path")) }
            return .success(text)
        case .oneOf(let words):
            guard words.contains(text) else { return .failure(Problem("expected \(words.joined(separator: ", "))")) }
            return .success(text)
        case .url:
            return checkURL(text)
        }
    }

    static func checkHost(_ text: String, portSettings: [String]) -> Result<String, Problem> {
        guard !text.isEmpty else { return .failure(Problem("it is empty")) }
        if text.hasPrefix("[") {
            guard text.hasSuffix("]"), isIPv6(String(text.dropFirst().dropLast())) else {
                return .failure(Problem("'[…]' must hold an IPv6 address"))
            }
            return .success(text)
        }
        if isIPv6(text) { return .success("[\(text)]") }
        if let colon = text.lastIndex(of: ":"), Int(text[text.index(after: colon)...]) != nil {
            let hint = portSettings.count == 1 ? "set the port in \(portSettings[0])" : "give the port a setting of its own"
            return .failure(Problem("it has a port (':\(text[text.index(after: colon)...])'): a host setting takes the host alone; \(hint)"))
        }
        let ascii: String
        do {
            ascii = try IDNA.toASCII(text)
        } catch {
            return .failure(Problem(error.description))
        }
        let labels = ascii.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-"),
                label.utf8.allSatisfy({ $0 < 0x80 && (isAlphanumeric($0) || $0 == UInt8(ascii: "-")) })
            else {
                return .failure(Problem("'\(text)' is not a host name (letters, digits, '-' and '.')"))
            }
        }
        return .success(ascii)
    }

    static func checkURL(_ text: String) -> Result<String, Problem> {
        let lowered = text.lowercased()
        guard let scheme = ["https://", "http://"].first(where: { lowered.hasPrefix($0) }) else {
            return .failure(Problem("a url starts with https:// or http://"))
        }
        let rest = text.dropFirst(scheme.count)
        guard !rest.contains("?"), !rest.contains("#") else { return .failure(Problem("a url setting has no query or fragment")) }
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        guard !authority.contains("@") else { return .failure(Problem("a url setting has no user info: credentials are secrets")) }
        var host = String(authority)
        var port = ""
        if let close = authority.lastIndex(of: "]") {
            host = String(authority[...close])
            port = String(authority[authority.index(after: close)...])
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = String(authority[colon...])
        }
        if !port.isEmpty {
            guard port.hasPrefix(":"), let number = Int(port.dropFirst()), (1...65535).contains(number) else {
                return .failure(Problem("the port must be 1-65535"))
            }
        }
        let checkedHost: String
        switch checkHost(host, portSettings: []) {
        case .success(let value): checkedHost = value
        case .failure(let problem): return .failure(problem)
        }
        var result = text.prefix(scheme.count) + checkedHost + port + path
        while result.hasSuffix("/") { result.removeLast() }
        return .success(String(result))
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return text.contains(":") && inet_pton(AF_INET6, text, &address) == 1
    }

    // MARK: Substitution

    static let prefix = "{{settings."

    /// `node` with every `{{settings.NAME}}` in its scalars replaced by the value; a name the
    /// channel does not declare is an error at the scalar that uses it.
    func substitute(_ node: Node, file: String, diagnostics: Diagnostics) -> Node {
        switch node {
        case .scalar(var scalar):
            guard scalar.string.contains(Self.prefix) else { return node }
            var text = scalar.string
            var output = ""
            while let open = text.range(of: Self.prefix) {
                output += text[..<open.lowerBound]
                guard let close = text.range(of: "}}", range: open.upperBound..<text.endIndex) else {
                    output += text[open.lowerBound...]
                    text = ""
                    break
                }
                let name = String(text[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespaces)
                if let value = self.values[name] {
                    output += value
                } else {
                    let known = self.values.keys.sorted()
                    diagnostics.error(
                        file, node,
                        "settings.\(name) is not declared in this channel's settings"
                            + (known.isEmpty ? " (it has none)" : "; declared: \(known.joined(separator: ", "))"))
                    output += text[open.lowerBound..<close.upperBound]
                }
                text = String(text[close.upperBound...])
            }
            output += text
            let tag = scalar.tag
            scalar.string = output
            scalar.tag = tag
            return .scalar(scalar)
        case .mapping(let mapping):
            return .mapping(
                Node.Mapping(
                    mapping.map { ($0.key, substitute($0.value, file: file, diagnostics: diagnostics)) }, mapping.tag,
                    mapping.style, mapping.mark))
        case .sequence(let sequence):
            return .sequence(
                Node.Sequence(
                    sequence.map { substitute($0, file: file, diagnostics: diagnostics) }, sequence.tag, sequence.style,
                    sequence.mark))
        case .alias:
            return node
        }
    }
}
