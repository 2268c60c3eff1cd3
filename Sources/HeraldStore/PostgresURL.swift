import Foundation
import PostgresNIO

public struct StoreConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension PostgresClient.Configuration {
    /// Reads `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
    /// TLS defaults to off: Herald's PostgreSQL usually sits beside it; say `sslmode=require` otherwise.
    public init(url: String) throws {
        guard let components = URLComponents(string: url),
            ["postgres", "postgresql"].contains(components.scheme ?? "")
        else {
            throw StoreConfigurationError(description: "not a postgres:// URL: \(Self.redacted(url))")
        }
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        let database = components.path.split(separator: "/").first.map { String($0) }
        let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable"
        let tls: TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require": tls = .require(.makeClientConfiguration())
        default: throw StoreConfigurationError(description: "unknown sslmode '\(mode)' (disable, prefer or require)")
        }
        self.init(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password?.removingPercentEncoding, database: database, tls: tls)
    }

    /// The URL with any password masked, safe to log.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "<unparseable URL>"
    }
}
