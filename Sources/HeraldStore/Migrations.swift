import HeraldCore
import Logging
import PostgresNIO

/// Schema migrations, applied in order, each once, under an advisory lock so that several
/// processes starting together don't race.
public enum Migrations {
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var statements: [String]
    }

    public static let all: [Migration] = [
        Migration(version: 1, name: "notifications, deliveries, attempts, outbox", statements: [
            """
            CREATE TABLE notifications (
                id uuid PRIMARY KEY,
                created_at timestamptz NOT NULL DEFAULT now(),
                idempotency_key text UNIQUE,
                config_version text NOT NULL DEFAULT '',
                request jsonb NOT NULL
            )
            """,
            "CREATE INDEX notifications_created_at ON notifications (created_at)",
            """
            CREATE TABLE deliveries (
                id uuid PRIMARY KEY,
                notification_id uuid NOT NULL REFERENCES notifications (id),
                channel text NOT NULL,
                status text NOT NULL,
                attempt_count integer NOT NULL DEFAULT 0,
                last_error text,
                provider_message_id text,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX deliveries_notification ON deliveries (notification_id)",
            "CREATE INDEX deliveries_open ON deliveries (channel, status) WHERE status IN ('queued', 'sending', 'retrying')",
            """
            CREATE TABLE attempts (
                id bigserial PRIMARY KEY,
                delivery_id uuid NOT NULL REFERENCES deliveries (id),
                notification_id uuid NOT NULL,
                number integer NOT NULL,
                started_at timestamptz NOT NULL,
                finished_at timestamptz NOT NULL,
                outcome text NOT NULL,
                http_status integer,
                error text,
                provider_message_id text,
                worker text NOT NULL,
                duration_ms double precision GENERATED ALWAYS AS (extract(epoch FROM finished_at - started_at) * 1000) STORED
            )
            """,
            "CREATE INDEX attempts_delivery ON attempts (delivery_id, number)",
            "CREATE INDEX attempts_notification ON attempts (notification_id)",
            // The attempt log is evidence: nobody edits it, not even Herald.
            """
            CREATE FUNCTION herald_attempts_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'attempts are append-only: % refused', TG_OP;
            END $$
            """,
            """
            CREATE TRIGGER attempts_append_only BEFORE UPDATE OR DELETE ON attempts
            FOR EACH ROW EXECUTE FUNCTION herald_attempts_are_append_only()
            """,
            """
            CREATE TABLE outbox (
                id bigserial PRIMARY KEY,
                delivery_id uuid NOT NULL,
                channel text NOT NULL,
                payload text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        Migration(version: 2, name: "attempt providers", statements: [
            "ALTER TABLE attempts ADD COLUMN provider text NOT NULL DEFAULT ''",
        ]),
        Migration(version: 3, name: "delivery engine: stored jobs, claims, scheduled outbox, dead letters, poison messages", statements: [
            // The job (rendered message included) is stored with its delivery and published from there for
            // every attempt, retry and replay; outbox rows only say which attempt to publish when.
            """
            ALTER TABLE deliveries ADD COLUMN job text, ADD COLUMN attempt_base integer NOT NULL DEFAULT 0,
                ADD COLUMN claimed_by text, ADD COLUMN lease_until timestamptz
            """,
            """
            ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL,
                ADD COLUMN attempt integer NOT NULL DEFAULT 1,
                ADD COLUMN not_before timestamptz NOT NULL DEFAULT now(),
                ADD COLUMN purpose text NOT NULL DEFAULT 'deliver'
            """,
            "CREATE INDEX outbox_due ON outbox (not_before, id)",
            "CREATE INDEX outbox_delivery ON outbox (delivery_id)",
            // Dead letters are failed deliveries, listed oldest failure first.
            "CREATE INDEX deliveries_dead_letters ON deliveries (updated_at, id) WHERE status = '\(DeliveryStatus.failed.rawValue)'",
            """
            CREATE TABLE poison_messages (
                id bigserial PRIMARY KEY,
                channel text NOT NULL,
                received_at timestamptz NOT NULL DEFAULT now(),
                message_id text NOT NULL DEFAULT '',
                reason text NOT NULL,
                body bytea NOT NULL
            )
            """,
        ]),
        Migration(version: 4, name: "tenants, API keys, idempotency with request hashes", statements: [
            // Everything belongs to a tenant; rows from before tenants belong to 'default'.
            """
            ALTER TABLE notifications ADD COLUMN tenant text NOT NULL DEFAULT 'default',
                ADD COLUMN request_hash text, ADD COLUMN response text
            """,
            "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_idempotency_key_key",
            "CREATE UNIQUE INDEX notifications_idempotency ON notifications (tenant, idempotency_key)",
            "CREATE INDEX notifications_tenant_created ON notifications (tenant, created_at, id)",
            "ALTER TABLE deliveries ADD COLUMN tenant text NOT NULL DEFAULT 'default'",
            "ALTER TABLE attempts ADD COLUMN tenant text NOT NULL DEFAULT 'default', ADD COLUMN channel text NOT NULL DEFAULT ''",
            """
            CREATE TABLE api_keys (
                id uuid PRIMARY KEY,
                prefix text NOT NULL UNIQUE,
                hash bytea NOT NULL,
                tenant text NOT NULL,
                scopes text[] NOT NULL,
                name text NOT NULL DEFAULT '',
                rate_limit integer,
                created_at timestamptz NOT NULL DEFAULT now(),
                revoked_at timestamptz
            )
            """,
        ]),
        Migration(version: 5, name: "audit query indexes", statements: [
            // Every audit query is one tenant's rows in (sort field, id) order, usually narrowed by an
            // equality and a time range: (tenant, equality column, time, id) answers it from the index in
            // order, the cursor's (time, id) comparison included. Chosen with EXPLAIN ANALYZE over
            // 1,000,000 attempts (docs/audit-benchmark.md).
            "CREATE INDEX attempts_audit_started ON attempts (tenant, started_at, id)",
            "CREATE INDEX attempts_audit_channel ON attempts (tenant, channel, started_at, id)",
            "CREATE INDEX attempts_audit_outcome ON attempts (tenant, outcome, started_at, id)",
            "CREATE INDEX deliveries_audit_created ON deliveries (tenant, created_at, id)",
            "CREATE INDEX deliveries_audit_status ON deliveries (tenant, status, updated_at, id)",
            "CREATE INDEX deliveries_audit_channel ON deliveries (tenant, channel, created_at, id)",
            // Equalities on metadata fields compile to a containment test this index answers.
            "CREATE INDEX notifications_audit_metadata ON notifications USING gin ((request -> 'metadata') jsonb_path_ops)",
        ]),
        Migration(version: 6, name: "delivery events (receipts)", statements: [
            // What providers reported after sending (delivery receipts), one row per distinct report:
            // the same provider status for the same delivery again is a duplicate and adds nothing.
            """
            CREATE TABLE delivery_events (
                id bigserial PRIMARY KEY,
                delivery_id uuid NOT NULL REFERENCES deliveries (id),
                notification_id uuid NOT NULL,
                tenant text NOT NULL,
                channel text NOT NULL,
                provider text NOT NULL,
                kind text NOT NULL,
                provider_status text NOT NULL,
                outcome text,
                previous_status text NOT NULL,
                resulting_status text NOT NULL,
                provider_message_id text,
                detail text,
                received_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (delivery_id, provider, provider_status)
            )
            """,
            "CREATE INDEX delivery_events_notification ON delivery_events (notification_id, id)",
            // Evidence, like the attempt log: one trigger function for every append-only table from here on.
            """
            CREATE FUNCTION herald_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
            END $$
            """,
            "CREATE TRIGGER delivery_events_append_only BEFORE UPDATE OR DELETE ON delivery_events FOR EACH ROW EXECUTE FUNCTION herald_append_only()",
            // Receipts that name the provider's message id (not Herald's delivery id) find the delivery here.
            """
            CREATE INDEX deliveries_provider_message ON deliveries (channel, provider_message_id)
            WHERE provider_message_id IS NOT NULL
            """,
        ]),
        Migration(version: 7, name: "provider circuits (breaker state per replica, for visibility)", statements: [
            // One row per replica and provider, written on each transition of the replica's breaker and
            // touched (seen_at) while the replica runs. Workers never read it: a breaker judges from its
            // own replica's outcomes; the gateway reads it for GET /v1/channels.
            """
            CREATE TABLE provider_circuits (
                channel text NOT NULL,
                provider text NOT NULL,
                replica text NOT NULL,
                state text NOT NULL CHECK (state IN ('closed', 'half_open', 'open')),
                changed_at timestamptz NOT NULL,
                reopens_at timestamptz,
                seen_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (channel, provider, replica)
            )
            """,
        ]),
        Migration(version: 8, name: "fewer index writes per delivery", statements: [
            // No query reads open deliveries by channel and status (workers take them from the queue,
            // the audit query goes by tenant), yet each claim wrote an entry into it.
            "DROP INDEX IF EXISTS deliveries_open",
        ]),
        Migration(version: 9, name: "day partitions: retention drops whole days", statements: partitionByDay),
    ]

    /// Migration 9. Notifications, deliveries, attempts and delivery events are partitioned by the UTC
    /// day of their notification, so that retention drops whole days (`DETACH` + `DROP`: no row-by-row
    /// delete, no vacuum debt, no bloat) and a growing history doesn't make the hot tables' indexes
    /// deeper. The key is the UUIDv7 id, whose first 48 bits are the acceptance time in milliseconds:
    /// a delivery's id carries its notification's instant (`DeliveryEngine.plan`), so a notification,
    /// its deliveries, their attempts and receipts land in the same day, and lookups by id still prune
    /// to one partition. Foreign keys join each day's partitions (`herald_ensure_partitions`). Rows of
    /// the unpartitioned tables are copied into one partition holding everything before the
    /// migration's day (`…_before_YYYYMMDD`, without foreign keys: at a midnight a copied delivery may
    /// sit in the next day), which retention drops like a day.
    /// Idempotency keys move to their own table: a unique index on a partitioned table must contain
    /// the partition key, and a key must stay unique across days.
    static let partitionByDay: [String] = [
        // The smallest UUIDv7 of an instant: the partition bounds.
        """
        CREATE FUNCTION herald_uuid_floor(instant timestamptz) RETURNS uuid IMMUTABLE STRICT LANGUAGE sql AS $$
            SELECT (lpad(to_hex(floor(extract(epoch FROM instant) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
        $$
        """,
        """
        CREATE FUNCTION herald_day_start(day date) RETURNS uuid IMMUTABLE STRICT LANGUAGE sql AS $$
            SELECT herald_uuid_floor(day::timestamp AT TIME ZONE 'UTC')
        $$
        """,
        """
        CREATE FUNCTION herald_uuid_time(id uuid) RETURNS timestamptz IMMUTABLE STRICT LANGUAGE sql AS $$
            SELECT to_timestamp(('x' || lpad(substr(replace(id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0)
        $$
        """,
        // Parents before children: partitions are created in this order and dropped in the reverse one.
        """
        CREATE FUNCTION herald_partitioned_tables() RETURNS text[] IMMUTABLE LANGUAGE sql AS $$
            SELECT ARRAY['notifications', 'deliveries', 'attempts', 'delivery_events']
        $$
        """,
        // Creates the missing days from first_day to last_day, each day's four partitions together
        // with the foreign keys between them; returns how many partitions it created. The keys are per
        // day (a delivery references its notification in the same day's partition, and so on): a key
        // on the parents would make every drop check the other days for references, holding the
        // parents locked meanwhile. A day that overlaps an existing partition, whose rows went to the
        // default partition meanwhile, or whose parents stayed locked past the caller's lock_timeout,
        // is skipped with a warning (its rows stay where they are; the next pass retries).
        """
        CREATE FUNCTION herald_ensure_partitions(first_day date, last_day date) RETURNS integer LANGUAGE plpgsql AS $$
        DECLARE
            day date;
            parent text;
            suffix text;
            created integer := 0;
        BEGIN
            FOR day IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
                suffix := '_p' || to_char(day, 'YYYYMMDD');
                CONTINUE WHEN to_regclass('delivery_events' || suffix) IS NOT NULL;
                BEGIN
                    FOREACH parent IN ARRAY herald_partitioned_tables() LOOP
                        CONTINUE WHEN to_regclass(parent || suffix) IS NOT NULL;
                        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                            parent || suffix, parent, herald_day_start(day), herald_day_start(day + 1));
                        created := created + 1;
                    END LOOP;
                    EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (notification_id) REFERENCES %I (id)',
                        'deliveries' || suffix, 'notifications' || suffix);
                    EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (delivery_id) REFERENCES %I (id)',
                        'attempts' || suffix, 'deliveries' || suffix);
                    EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (delivery_id) REFERENCES %I (id)',
                        'delivery_events' || suffix, 'deliveries' || suffix);
                EXCEPTION
                    -- A day inside the partition of the rows from before partitioning: nothing to create.
                    WHEN invalid_object_definition THEN
                        RAISE NOTICE 'partitions of % not created: %', day, SQLERRM;
                    WHEN check_violation OR lock_not_available THEN
                        RAISE WARNING 'partitions of % not created: %', day, SQLERRM;
                END;
            END LOOP;
            RETURN created;
        END $$
        """,
        // The unpartitioned tables and their indexes step aside (index names are per schema).
        """
        DO $$
        DECLARE
            parent text;
            index_name text;
        BEGIN
            FOREACH parent IN ARRAY herald_partitioned_tables() LOOP
                FOR index_name IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                    WHERE i.indrelid = parent::regclass
                LOOP
                    EXECUTE format('ALTER INDEX %I RENAME TO %I', index_name, index_name || '_unpartitioned');
                END LOOP;
                EXECUTE format('ALTER TABLE %I RENAME TO %I', parent, parent || '_unpartitioned');
            END LOOP;
        END $$
        """,
        """
        CREATE TABLE notifications (
            id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            tenant text NOT NULL DEFAULT 'default',
            idempotency_key text,
            request_hash text,
            response text,
            config_version text NOT NULL DEFAULT '',
            request jsonb NOT NULL,
            PRIMARY KEY (id)
        ) PARTITION BY RANGE (id)
        """,
        "CREATE INDEX notifications_tenant_created ON notifications (tenant, created_at, id)",
        "CREATE INDEX notifications_audit_metadata ON notifications USING gin ((request -> 'metadata') jsonb_path_ops)",
        """
        CREATE TABLE idempotency_keys (
            tenant text NOT NULL,
            key text NOT NULL,
            notification_id uuid NOT NULL,
            PRIMARY KEY (tenant, key)
        )
        """,
        // Retention deletes a day's keys by the day's notification id range.
        "CREATE INDEX idempotency_keys_notification ON idempotency_keys (notification_id)",
        """
        CREATE TABLE deliveries (
            id uuid NOT NULL,
            notification_id uuid NOT NULL,
            tenant text NOT NULL DEFAULT 'default',
            channel text NOT NULL,
            status text NOT NULL,
            attempt_count integer NOT NULL DEFAULT 0,
            attempt_base integer NOT NULL DEFAULT 0,
            last_error text,
            provider_message_id text,
            job text,
            claimed_by text,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (id)
        ) PARTITION BY RANGE (id)
        """,
        "CREATE INDEX deliveries_notification ON deliveries (notification_id)",
        "CREATE INDEX deliveries_dead_letters ON deliveries (updated_at, id) WHERE status = '\(DeliveryStatus.failed.rawValue)'",
        "CREATE INDEX deliveries_audit_created ON deliveries (tenant, created_at, id)",
        "CREATE INDEX deliveries_audit_status ON deliveries (tenant, status, updated_at, id)",
        "CREATE INDEX deliveries_audit_channel ON deliveries (tenant, channel, created_at, id)",
        """
        CREATE INDEX deliveries_provider_message ON deliveries (channel, provider_message_id)
        WHERE provider_message_id IS NOT NULL
        """,
        // Same sequences as before: attempt ids keep counting up.
        """
        CREATE TABLE attempts (
            id bigint NOT NULL DEFAULT nextval('attempts_id_seq'),
            delivery_id uuid NOT NULL,
            notification_id uuid NOT NULL,
            tenant text NOT NULL DEFAULT 'default',
            channel text NOT NULL DEFAULT '',
            provider text NOT NULL DEFAULT '',
            number integer NOT NULL,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            outcome text NOT NULL,
            http_status integer,
            error text,
            provider_message_id text,
            worker text NOT NULL,
            duration_ms double precision GENERATED ALWAYS AS (extract(epoch FROM finished_at - started_at) * 1000) STORED,
            PRIMARY KEY (id, delivery_id)
        ) PARTITION BY RANGE (delivery_id)
        """,
        "ALTER SEQUENCE attempts_id_seq OWNED BY attempts.id",
        "CREATE INDEX attempts_delivery ON attempts (delivery_id, number)",
        "CREATE INDEX attempts_notification ON attempts (notification_id)",
        "CREATE INDEX attempts_audit_started ON attempts (tenant, started_at, id)",
        "CREATE INDEX attempts_audit_channel ON attempts (tenant, channel, started_at, id)",
        "CREATE INDEX attempts_audit_outcome ON attempts (tenant, outcome, started_at, id)",
        // Nobody edits the attempt log, not even Herald; retention removes whole days, never rows.
        "CREATE TRIGGER attempts_append_only BEFORE UPDATE OR DELETE ON attempts FOR EACH ROW EXECUTE FUNCTION herald_append_only()",
        """
        CREATE TABLE delivery_events (
            id bigint NOT NULL DEFAULT nextval('delivery_events_id_seq'),
            delivery_id uuid NOT NULL,
            notification_id uuid NOT NULL,
            tenant text NOT NULL,
            channel text NOT NULL,
            provider text NOT NULL,
            kind text NOT NULL,
            provider_status text NOT NULL,
            outcome text,
            previous_status text NOT NULL,
            resulting_status text NOT NULL,
            provider_message_id text,
            detail text,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (id, delivery_id),
            UNIQUE (delivery_id, provider, provider_status)
        ) PARTITION BY RANGE (delivery_id)
        """,
        "ALTER SEQUENCE delivery_events_id_seq OWNED BY delivery_events.id",
        "CREATE INDEX delivery_events_notification ON delivery_events (notification_id, id)",
        "CREATE TRIGGER delivery_events_append_only BEFORE UPDATE OR DELETE ON delivery_events FOR EACH ROW EXECUTE FUNCTION herald_append_only()",
        // A row whose day has no partition (a clock far off) still has a place; maintenance creates the
        // days ahead so that this stays empty.
        // The rows from before go to one partition per table that ends after the day of the newest of
        // them (ids far in the future, not made by Herald's clock, go to the default partition), so
        // that no copied delivery lands in a later day than its notification.
        """
        DO $$
        DECLARE
            parent text;
            today date := (now() AT TIME ZONE 'UTC')::date;
            newest uuid;
            first_day date := today;
        BEGIN
            FOREACH parent IN ARRAY herald_partitioned_tables() LOOP
                EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
            END LOOP;
            SELECT greatest(
                (SELECT id FROM notifications_unpartitioned WHERE id < herald_uuid_floor(now() + interval '1 day') ORDER BY id DESC LIMIT 1),
                (SELECT id FROM deliveries_unpartitioned WHERE id < herald_uuid_floor(now() + interval '1 day') ORDER BY id DESC LIMIT 1)
            ) INTO newest;
            IF newest IS NOT NULL THEN
                first_day := (herald_uuid_time(newest) AT TIME ZONE 'UTC')::date + 1;
                FOREACH parent IN ARRAY herald_partitioned_tables() LOOP
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (MINVALUE) TO (%L)',
                        parent || '_before_' || to_char(first_day, 'YYYYMMDD'), parent, herald_day_start(first_day));
                END LOOP;
            END IF;
            PERFORM herald_ensure_partitions(greatest(first_day, today), today + 7);
        END $$
        """,
        """
        INSERT INTO notifications (id, created_at, tenant, idempotency_key, request_hash, response, config_version, request)
        SELECT id, created_at, tenant, idempotency_key, request_hash, response, config_version, request FROM notifications_unpartitioned
        """,
        """
        INSERT INTO idempotency_keys (tenant, key, notification_id)
        SELECT tenant, idempotency_key, id FROM notifications_unpartitioned WHERE idempotency_key IS NOT NULL
        """,
        """
        INSERT INTO deliveries (id, notification_id, tenant, channel, status, attempt_count, attempt_base, last_error,
            provider_message_id, job, claimed_by, lease_until, created_at, updated_at)
        SELECT id, notification_id, tenant, channel, status, attempt_count, attempt_base, last_error,
            provider_message_id, job, claimed_by, lease_until, created_at, updated_at FROM deliveries_unpartitioned
        """,
        """
        INSERT INTO attempts (id, delivery_id, notification_id, tenant, channel, provider, number, started_at, finished_at,
            outcome, http_status, error, provider_message_id, worker)
        SELECT id, delivery_id, notification_id, tenant, channel, provider, number, started_at, finished_at,
            outcome, http_status, error, provider_message_id, worker FROM attempts_unpartitioned
        """,
        """
        INSERT INTO delivery_events (id, delivery_id, notification_id, tenant, channel, provider, kind, provider_status,
            outcome, previous_status, resulting_status, provider_message_id, detail, received_at)
        SELECT id, delivery_id, notification_id, tenant, channel, provider, kind, provider_status,
            outcome, previous_status, resulting_status, provider_message_id, detail, received_at FROM delivery_events_unpartitioned
        """,
        "DROP TABLE delivery_events_unpartitioned, attempts_unpartitioned, deliveries_unpartitioned, notifications_unpartitioned",
    ]

    /// Applies every migration not yet applied; returns the versions it applied.
    /// `through`: stop after that version (the upgrade tests build an older schema with it).
    @discardableResult
    public static func migrate(client: PostgresClient, logger: Logger, through last: Int? = nil) async throws -> [Int] {
        try await client.withTransaction(logger: logger) { connection in
            // A fixed key: "herald" in ASCII.
            try await connection.query("SELECT pg_advisory_xact_lock(104101114097108100)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS herald_schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query(
                "SELECT version FROM herald_schema_migrations", logger: logger
            ).decode(Int.self) {
                applied.insert(version)
            }
            var newlyApplied: [Int] = []
            for migration in all where !applied.contains(migration.version) && migration.version <= (last ?? Int.max) {
                logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO herald_schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                newlyApplied.append(migration.version)
            }
            return newlyApplied
        }
    }
}
