import ArgumentParser
import Foundation
import HeraldCore
import HeraldStore

/// `herald keys create|list|revoke`: API keys, straight in PostgreSQL (HERALD_POSTGRES_URL).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke API keys.",
        subcommands: [KeysCreateCommand.self, KeysListCommand.self, KeysRevokeCommand.self])
}

struct KeysCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create an API key and print its token (shown this once; only a hash is stored).")

    @Option(help: "The tenant the key belongs to (letters, digits, '-', '_', '.'; at most 63).")
    var tenant: String

    @Option(help: "Comma-separated scopes: send, read, admin.")
    var scopes: String = "send,read"

    @Option(help: "A name to recognise the key by.")
    var name: String = ""

    @Option(help: "Requests a second this key may make (default: the gateway's HERALD_API_RATE_LIMIT).")
    var rateLimit: Int?

    @Flag(help: "Print only the token (for scripts).")
    var quiet = false

    func validate() throws {
        guard !tenant.isEmpty, tenant.count <= 63,
            tenant.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        else { throw ValidationError("--tenant must be 1 to 63 letters, digits, '-', '_' or '.'") }
        _ = try parsedScopes()
        if let rateLimit, !(1...1_000_000).contains(rateLimit) { throw ValidationError("--rate-limit must be from 1 to 1000000") }
    }

    func parsedScopes() throws -> Set<APIScope> {
        let names = scopes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var result = Set<APIScope>()
        for name in names {
            guard let scope = APIScope(rawValue: name) else {
                throw ValidationError("unknown scope '\(name)'; scopes are send, read, admin")
            }
            result.insert(scope)
        }
        guard !result.isEmpty else { throw ValidationError("give at least one scope") }
        return result
    }

    func run() async throws {
        let scopes = try parsedScopes()
        let (tenant, name, rateLimit) = (tenant, name, rateLimit)
        let (token, key) = try await withStore(role: "keys") { store in
            try await APIKeyStore(client: store.client, logger: store.logger).create(
                tenant: tenant, scopes: scopes, name: name, rateLimit: rateLimit)
        }
        if quiet {
            print(token)
            return
        }
        print("created key \(key.prefix) for tenant \(key.tenant) with scopes \(key.scopes.map(\.rawValue).sorted().joined(separator: ","))")
        print("token (shown once, keep it secret): \(token)")
    }
}

struct KeysListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List API keys (never their tokens).")

    @Option(help: "Only this tenant's keys.")
    var tenant: String?

    func run() async throws {
        let tenant = tenant
        let keys = try await withStore(role: "keys") { store in
            try await APIKeyStore(client: store.client, logger: store.logger).list(tenant: tenant)
        }
        print("prefix           tenant           scopes             rate   created                   revoked")
        for key in keys {
            let scopes = key.scopes.map(\.rawValue).sorted().joined(separator: ",")
            print(
                [
                    key.prefix.padding(toLength: 15, withPad: " ", startingAt: 0),
                    key.tenant.padding(toLength: 15, withPad: " ", startingAt: 0),
                    scopes.padding(toLength: 17, withPad: " ", startingAt: 0),
                    (key.rateLimit.map(String.init) ?? "-").padding(toLength: 5, withPad: " ", startingAt: 0),
                    Timestamp.string(key.createdAt), key.revokedAt.map(Timestamp.string) ?? "-",
                ].joined(separator: "  "))
        }
        print("\(keys.count) key(s)")
    }
}

struct KeysRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke an API key by its prefix (hk_…); gateways refuse it within seconds.")

    @Argument(help: "The key's prefix, as `keys list` shows it.")
    var prefix: String

    func run() async throws {
        let prefix = prefix
        let revoked = try await withStore(role: "keys") { store in
            try await APIKeyStore(client: store.client, logger: store.logger).revoke(prefix: prefix)
        }
        guard revoked else { throw ValidationError("no active key with prefix \(prefix)") }
        print("revoked \(prefix)")
    }
}
