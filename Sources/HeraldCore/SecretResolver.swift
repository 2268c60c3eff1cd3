import Foundation

/// Resolves secrets (and deployment settings, see `settings:` in channel files) by name, in order: the file `$HERALD_SECRETS_DIR/NAME` (Docker/Kubernetes secrets),
/// the file named by the environment variable `NAME_FILE`, the environment variable `NAME`.
///
/// Files are read on every lookup, so a rotated secret takes effect on the next attempt.
/// A trailing line break (as `echo` and most editors write) is dropped. Values are never logged.
public struct SecretResolver: Sendable {
    private let environment: [String: String]
    private let secretsDirectory: String?

    /// - Parameters:
    ///   - environment: where `NAME` and `NAME_FILE` are looked up.
    ///   - secretsDirectory: the secrets directory; `nil` = `environment["HERALD_SECRETS_DIR"]`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, secretsDirectory: String? = nil) {
        self.environment = environment
        let directory = secretsDirectory ?? environment["HERALD_SECRETS_DIR"]
        self.secretsDirectory = directory?.isEmpty == true ? nil : directory
    }

    /// The secret's value, or nil when it is set nowhere. Names are `[A-Za-z0-9_]+` (nothing else can
    /// name a file inside the secrets directory).
    public func value(_ name: String) -> String? {
        lookup(name)?.value
    }

    /// The value and where it came from (`$HERALD_SECRETS_DIR/NAME`, `NAME_FILE (path)` or
    /// `environment NAME`), for error messages that must not show the value of a secret.
    public func lookup(_ name: String) -> (value: String, origin: String)? {
        guard Self.isValidName(name) else { return nil }
        if let directory = secretsDirectory, let value = Self.readFile(directory + "/" + name) {
            return (value, "\(directory)/\(name)")
        }
        if let path = environment[name + "_FILE"], !path.isEmpty, let value = Self.readFile(path) {
            return (value, "\(name)_FILE (\(path))")
        }
        return environment[name].map { ($0, "environment variable \(name)") }
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
        }
    }

    private static func readFile(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var text = String(decoding: data, as: UTF8.self)
        while let last = text.unicodeScalars.last, last == "\n" || last == "\r" { text.unicodeScalars.removeLast() }
        return text
    }
}
