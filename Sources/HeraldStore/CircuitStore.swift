import Foundation
import HeraldCore
import Logging
import PostgresNIO

/// One replica's breaker state for one provider, as published to `provider_circuits`.
public struct CircuitRow: Sendable, Hashable {
    public var channel: String
    public var provider: String
    public var replica: String
    /// `closed`, `half_open` or `open`.
    public var state: String
    public var changedAt: Date
    public var reopensAt: Date?

    public init(channel: String, provider: String, replica: String, state: String, changedAt: Date, reopensAt: Date?) {
        self.channel = channel
        self.provider = provider
        self.replica = replica
        self.state = state
        self.changedAt = changedAt
        self.reopensAt = reopensAt
    }
}

/// A provider's circuits over the replicas seen lately.
public struct CircuitSummary: Sendable, Hashable {
    /// The worst state a replica reports: `open`, else `half_open`, else `closed`.
    public var state: String
    public var replicasOpen: Int
    /// Replicas that published a state for this provider and were seen lately.
    public var replicasReporting: Int
    /// The latest transition of any of them.
    public var changedAt: Date?

    public init(state: String, replicasOpen: Int, replicasReporting: Int, changedAt: Date? = nil) {
        self.state = state
        self.replicasOpen = replicasOpen
        self.replicasReporting = replicasReporting
        self.changedAt = changedAt
    }
}

/// Breaker state in PostgreSQL: for visibility only, never read on the delivery path.
public struct CircuitStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Writes a replica's transition (the latest one per provider wins).
    public func record(_ row: CircuitRow) async throws {
        try await client.query(
            """
            INSERT INTO provider_circuits (channel, provider, replica, state, changed_at, reopens_at, seen_at)
            VALUES (\(row.channel), \(row.provider), \(row.replica), \(row.state), \(row.changedAt), \(row.reopensAt), now())
            ON CONFLICT (channel, provider, replica) DO UPDATE
            SET state = EXCLUDED.state, changed_at = EXCLUDED.changed_at, reopens_at = EXCLUDED.reopens_at, seen_at = now()
            WHERE provider_circuits.changed_at <= EXCLUDED.changed_at
            """, logger: logger)
    }

    /// The replica is alive: its rows stay in the summary.
    public func touch(replica: String) async throws {
        try await client.query("UPDATE provider_circuits SET seen_at = now() WHERE replica = \(replica)", logger: logger)
    }

    /// The replica stops: its rows go.
    public func remove(replica: String) async throws {
        try await client.query("DELETE FROM provider_circuits WHERE replica = \(replica)", logger: logger)
    }

    /// Per channel and provider, over the replicas seen within `seenWithin`.
    public func summaries(seenWithin: Duration) async throws -> [String: [String: CircuitSummary]] {
        var result: [String: [String: CircuitSummary]] = [:]
        let seconds = seenWithin.timeInterval
        for try await (channel, provider, open, halfOpen, reporting, changedAt) in try await client.query(
            """
            SELECT channel, provider,
                   count(*) FILTER (WHERE state = 'open')::int8, count(*) FILTER (WHERE state = 'half_open')::int8,
                   count(*)::int8, max(changed_at)
            FROM provider_circuits
            WHERE seen_at > now() - make_interval(secs => \(seconds))
            GROUP BY channel, provider
            """, logger: logger
        ).decode((String, String, Int64, Int64, Int64, Date?).self) {
            let state = open > 0 ? "open" : halfOpen > 0 ? "half_open" : "closed"
            result[channel, default: [:]][provider] = CircuitSummary(
                state: state, replicasOpen: Int(open), replicasReporting: Int(reporting), changedAt: changedAt)
        }
        return result
    }
}
