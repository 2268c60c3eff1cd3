import Foundation
import HeraldCore
import Logging
import PostgresNIO

// The pipeline's hot statements, prepared once per connection (postgres-nio keeps them by name).
//
// Why: with the tables partitioned by day, PostgreSQL spent more time *planning* these statements
// than running them: 0.58 ms of planning against 0.36 ms of execution per claim, 0.38 against 0.42
// per settlement, 1.3 ms of planning for a relay poll that found nothing (pg_stat_statements over a
// quick bench run). A prepared statement is parsed once; on a pool whose sessions use generic plans
// (`StatementPlans.generic`, the worker's) it is also planned once, and its partitions are pruned
// when it runs, from the bound ids' range. Values that were literals in the SQL text are bound
// instead, so that the text, and with it the prepared statement, is one per kind.
//
// A generic plan knows neither how many ids a batch holds nor how wide their range is, so every
// lookup of a delivery by id also says `id = ANY(the ids)`: with only `id = t.id AND id BETWEEN
// lowest AND highest`, the generic plan scanned the whole range (every delivery accepted between the
// batch's oldest and newest) and hash-joined it, where a custom plan had looked each id up.

/// Claims deliveries for attempts (`NotificationStore.claim`).
struct ClaimStatement: PostgresPreparedStatement {
    typealias Row = (Int, Bool, String, Int, Int, String?, Double?, Int)

    static let sql = """
        WITH cfg AS (
            SELECT set_config('synchronous_commit', 'off', true)
        ), t AS (
            SELECT * FROM unnest($1::uuid[], $2::int[], $3::float8[]) WITH ORDINALITY AS t(id, attempt, lease, position)
        ), c AS (
            UPDATE deliveries d SET status = $6, claimed_by = $7,
                lease_until = now() + t.lease * interval '1 second', updated_at = now()
            FROM t
            WHERE d.id = t.id AND d.id = ANY($1::uuid[]) AND d.id BETWEEN $4 AND $5
                AND d.attempt_count < t.attempt AND d.status = ANY($8::text[])
                AND EXISTS (SELECT 1 FROM cfg)
            RETURNING d.id
        )
        SELECT t.position, t.id IN (SELECT id FROM c), d.status, d.attempt_count, d.attempt_base, d.claimed_by,
            extract(epoch FROM d.lease_until - now())::float8,
            (SELECT count(*) FROM attempts a
             WHERE a.delivery_id = t.id AND a.delivery_id BETWEEN $4 AND $5
                AND a.number = t.attempt AND a.outcome = $9)::int
        FROM t JOIN deliveries d ON d.id = t.id AND d.id = ANY($1::uuid[]) AND d.id BETWEEN $4 AND $5
        """

    var ids: [UUID]
    var attempts: [Int]
    var leases: [Double]
    var lowest: UUID
    var highest: UUID
    var worker: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 9)
        bindings.append(ids)
        bindings.append(attempts)
        bindings.append(leases)
        bindings.append(lowest)
        bindings.append(highest)
        bindings.append(DeliveryStatus.sending.rawValue)
        bindings.append(worker)
        bindings.append(DeliveryStatus.names(DeliveryStatus.claimable))
        bindings.append(AttemptOutcome.throttled.rawValue)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Appends attempts and moves their deliveries' statuses (`NotificationStore.recordAttempts`).
struct RecordAttemptsStatement: PostgresPreparedStatement {
    typealias Row = ()

    static let sql = """
        WITH a AS (
            INSERT INTO attempts (delivery_id, notification_id, number, started_at, finished_at, outcome,
                http_status, error, provider_message_id, worker, provider, channel, tenant)
            SELECT delivery_id, notification_id, number, started_at, finished_at, outcome,
                NULLIF(http_status, 0), NULLIF(error, ''), NULLIF(provider_message_id, ''), worker, provider, channel, tenant
            FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::int[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY
                AS t(delivery_id, notification_id, number, started_at, finished_at, outcome, http_status,
                     error, provider_message_id, worker, provider, channel, tenant, position)
            ORDER BY position
        )
        UPDATE deliveries d SET
            status = CASE WHEN d.status = ANY($21::text[]) THEN d.status ELSE u.status END,
            last_error = CASE WHEN d.status = ANY($21::text[]) THEN d.last_error ELSE NULLIF(u.error, '') END,
            attempt_count = GREATEST(d.attempt_count, u.number),
            provider_message_id = COALESCE(NULLIF(u.provider_message_id, ''), d.provider_message_id),
            claimed_by = NULL, lease_until = NULL, updated_at = now()
        FROM (SELECT DISTINCT ON (id) * FROM unnest($14::uuid[], $15::text[], $16::text[], $17::int[], $18::text[])
                WITH ORDINALITY AS u(id, status, error, number, provider_message_id, position)
              ORDER BY id, number DESC, position DESC) u
        WHERE d.id = u.id AND d.id = ANY($14::uuid[]) AND d.id BETWEEN $19 AND $20
        """

    var attempts: [AttemptRecord]
    var moved: [Settlement]
    var lowest: UUID
    var highest: UUID

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 21)
        bindings.append(attempts.map(\.deliveryID))
        bindings.append(attempts.map(\.notificationID))
        bindings.append(attempts.map(\.number))
        bindings.append(attempts.map(\.startedAt))
        bindings.append(attempts.map(\.finishedAt))
        bindings.append(attempts.map(\.outcome.rawValue))
        bindings.append(attempts.map { $0.httpStatus ?? 0 })
        bindings.append(attempts.map { $0.error ?? "" })
        bindings.append(attempts.map { $0.providerMessageID ?? "" })
        bindings.append(attempts.map(\.worker))
        bindings.append(attempts.map(\.provider))
        bindings.append(attempts.map(\.channel))
        bindings.append(attempts.map(\.tenant))
        bindings.append(moved.map(\.deliveryID))
        bindings.append(moved.map { $0.status?.rawValue ?? "" })
        bindings.append(moved.map { $0.lastError ?? "" })
        // A throttled attempt is recorded but not spent: attempt_count stays, so the same number is claimed again.
        bindings.append(moved.map { $0.spendsAttempt ? ($0.attempts.map(\.number).max() ?? 0) : 0 })
        bindings.append(moved.map { $0.attempts.last?.providerMessageID ?? "" })
        bindings.append(lowest)
        bindings.append(highest)
        bindings.append(DeliveryStatus.names(DeliveryStatus.terminal))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// Stores notifications with their deliveries, idempotency keys and outbox rows (`NotificationStore.accept`).
struct AcceptStatement: PostgresPreparedStatement {
    typealias Row = (UUID, Int64?)

    static let sql = """
        WITH a AS (
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[]) AS a(id, created_at, tenant, key, hash, response, version, document)
        ), k AS (
            -- A key is unique across days, in its own table (Migrations.partitionByDay). One order
            -- for every batch: two batches holding the same keys then lock them in the same order and
            -- wait for each other instead of deadlocking.
            INSERT INTO idempotency_keys (tenant, key, notification_id)
            SELECT tenant, key, id FROM a WHERE key <> '' ORDER BY tenant, key, id
            ON CONFLICT (tenant, key) DO NOTHING
            RETURNING notification_id
        ), n AS (
            INSERT INTO notifications (id, created_at, tenant, idempotency_key, request_hash, response, config_version, request)
            SELECT id, created_at, tenant, NULLIF(key, ''), NULLIF(hash, ''), NULLIF(response, ''), version, document::jsonb
            FROM a WHERE key = '' OR id IN (SELECT notification_id FROM k)
            RETURNING id
        ), t AS (
            SELECT * FROM unnest($9::uuid[], $10::uuid[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bool[],
                $16::timestamptz[], $17::text[])
                AS t(id, notification_id, tenant, channel, status, job, publish, publish_at, purpose)
            WHERE t.notification_id IN (SELECT id FROM n)
        ), d AS (
            INSERT INTO deliveries (id, notification_id, tenant, channel, status, job, created_at, updated_at)
            SELECT id, notification_id, tenant, channel, status, job, now(), now() FROM t
        ), o AS (
            INSERT INTO outbox (delivery_id, channel, attempt, not_before, purpose)
            SELECT id, channel, 1, publish_at, purpose FROM t WHERE publish
            RETURNING id, delivery_id
        )
        SELECT id, NULL::int8 FROM n UNION ALL SELECT delivery_id, id FROM o
        """

    /// The notifications' columns, one array each, in the order of `a` above.
    var ids: [UUID] = [], createdAts: [Date] = [], tenants: [String] = [], keys: [String] = []
    var hashes: [String] = [], responses: [String] = [], versions: [String] = [], documents: [String] = []
    /// The deliveries' columns, in the order of `t` above.
    var deliveryIDs: [UUID] = [], deliveryNotificationIDs: [UUID] = [], deliveryTenants: [String] = []
    var channels: [String] = [], statuses: [String] = [], jobs: [String] = [], publishes: [Bool] = []
    var publishAts: [Date] = [], purposes: [String] = []

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 17)
        bindings.append(ids)
        bindings.append(createdAts)
        bindings.append(tenants)
        bindings.append(keys)
        bindings.append(hashes)
        bindings.append(responses)
        bindings.append(versions)
        bindings.append(documents)
        bindings.append(deliveryIDs)
        bindings.append(deliveryNotificationIDs)
        bindings.append(deliveryTenants)
        bindings.append(channels)
        bindings.append(statuses)
        bindings.append(jobs)
        bindings.append(publishes)
        bindings.append(publishAts)
        bindings.append(purposes)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Removes outbox rows their writer published itself (`OutboxStore.remove(published:)`).
struct RemovePublishedStatement: PostgresPreparedStatement {
    typealias Row = ()

    // One statement, one round trip: set_config(…, true) is SET LOCAL for the statement's own transaction.
    static let sql = """
        WITH c AS (SELECT set_config('synchronous_commit', 'off', true))
        DELETE FROM outbox WHERE id = ANY($1::int8[]) AND EXISTS (SELECT 1 FROM c)
        """

    var ids: [Int64]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(ids)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// Locks the due outbox rows for the relay (`OutboxStore.relayBatch`).
struct DueOutboxStatement: PostgresPreparedStatement {
    typealias Row = (Int64, UUID, String, Int, String, String?, Double)

    static let sql = """
        SELECT o.id, o.delivery_id, o.channel, o.attempt, o.purpose, COALESCE(o.payload, d.job),
            extract(epoch FROM now() - o.not_before)::float8
        FROM outbox o LEFT JOIN deliveries d ON d.id = o.delivery_id
        WHERE o.not_before <= now()
        ORDER BY o.not_before, o.id LIMIT $1
        FOR UPDATE OF o SKIP LOCKED
        """

    var limit: Int

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(limit)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

extension PostgresConnection {
    /// Runs a prepared statement that returns no rows. (postgres-nio's `execute` that returns the
    /// command tag traps on a prepared statement's result stream, so the rows, none, are read instead.)
    func run<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws where Statement.Row == () {
        for try await _ in try await execute(statement, logger: logger) {}
    }
}
