import ArgumentParser
import Foundation
import HeraldCore
import HeraldStore
import Logging
import PostgresNIO

/// `herald dlq list|replay`: the dead letters (failed deliveries) straight from PostgreSQL, for
/// operators; the API offers the same (`GET /v1/deadletters`, `POST /v1/deadletters/retry`).
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq", abstract: "List and replay dead letters (deliveries that failed for good).",
        subcommands: [DeadLetterListCommand.self, DeadLetterReplayCommand.self])
}

struct DeadLetterFilterOptions: ParsableArguments {
    @Option(help: "Only this channel.")
    var channel: String?

    @Option(help: "Only failures at or after this RFC 3339 time (e.g. 2026-12-01T00:00:00Z).")
    var since: String?

    @Option(help: "Only failures before this RFC 3339 time.")
    var until: String?

    @Option(help: "At most this many (1 to 1000).")
    var limit: Int = 100

    func selection(ids: [String] = []) throws -> DeadLetterSelection {
        func instant(_ text: String?, _ name: String) throws -> Date? {
            guard let text else { return nil }
            guard let date = Timestamp.parse(text) else { throw ValidationError("--\(name) must be an RFC 3339 time, got '\(text)'") }
            return date
        }
        guard (1...DeadLetterSelection.maximumLimit).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        var deliveryIDs: [UUID]?
        if !ids.isEmpty {
            deliveryIDs = try ids.map { text in
                guard let id = UUID(uuidString: text) else { throw ValidationError("'\(text)' is not a delivery id") }
                return id
            }
        }
        return DeadLetterSelection(
            channel: channel, since: try instant(since, "since"), until: try instant(until, "until"), deliveryIDs: deliveryIDs,
            limit: limit)
    }
}

/// Runs `body` with a store on `HERALD_POSTGRES_URL`.
func withStore<T: Sendable>(role: String, _ body: @Sendable (NotificationStore) async throws -> T) async throws -> T {
    let environment = HeraldEnvironment()
    let (logger, _) = environment.bootstrap(role: role)
    let client = PostgresClient(configuration: try .herald(url: environment.postgresURL, connections: 2), backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        do {
            return try await body(NotificationStore(client: client, logger: logger))
        } catch {
            throw ValidationError(StoreFailure.describe(error))
        }
    }
}

struct DeadLetterListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List dead letters, oldest failure first.")

    @OptionGroup var filter: DeadLetterFilterOptions

    @Flag(help: "One JSON object per line instead of a table.")
    var json = false

    func run() async throws {
        let selection = try filter.selection()
        let letters = try await withStore(role: "dlq") { store in try await store.deadLetters(selection, after: nil) }
        if json {
            for letter in letters {
                var object: [String: JSONValue] = [
                    "delivery_id": .string(letter.id.lowercasedString), "notification_id": .string(letter.notificationID.lowercasedString),
                    "channel": .string(letter.channel), "attempt_count": .integer(Int64(letter.attemptCount)),
                    "failed_at": .string(Timestamp.string(letter.failedAt)),
                ]
                if let error = letter.lastError { object["last_error"] = .string(error) }
                print(String(decoding: try JSONEncoder.sorted.encode(JSONValue.object(object)), as: UTF8.self))
            }
            return
        }
        print("delivery_id                           channel          attempts  failed_at                 last_error")
        for letter in letters {
            let error = (letter.lastError ?? "").replacingOccurrences(of: "\n", with: " ").prefix(80)
            print(
                "\(letter.id.lowercasedString)  \(letter.channel.padding(toLength: 15, withPad: " ", startingAt: 0))  "
                    + "\(String(letter.attemptCount).padding(toLength: 8, withPad: " ", startingAt: 0))  "
                    + "\(Timestamp.string(letter.failedAt))  \(error)")
        }
        print("\(letters.count) dead letter(s)")
    }
}

struct DeadLetterReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Send dead letters again: each becomes queued with a fresh attempt budget; its attempts so far stay.")

    @OptionGroup var filter: DeadLetterFilterOptions

    @Argument(help: "Delivery ids to replay (default: every dead letter the filter selects).")
    var ids: [String] = []

    func run() async throws {
        let selection = try filter.selection(ids: ids)
        let replayed = try await withStore(role: "dlq") { store in try await store.replay(selection) }
        for id in replayed { print(id.lowercasedString) }
        print("replayed \(replayed.count) delivery(ies); a running relay (gateway or worker) publishes them now")
    }
}

extension JSONEncoder {
    static let sorted: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
