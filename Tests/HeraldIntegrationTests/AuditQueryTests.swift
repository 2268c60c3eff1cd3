import Foundation
import HTTPTypes
import HeraldCore
import HeraldFilter
@testable import HeraldGateway
import HeraldStore
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

/// The audit query against a real PostgreSQL: for every filter it returns exactly the rows that the
/// equivalent hand-written SQL selects and that the filter accepts in memory on the row documents, only
/// ever the tenant's own, page by page in a stable order; bad requests are 422s naming JSON Pointers; a
/// query that runs too long is cancelled by the statement timeout.
///
/// Fixture rows go in under fresh tenants (attempts are append-only and stay; they are few).
@Suite(.serialized)
struct AuditQueryTests {
    // MARK: Fixtures

    /// One tenant's rows, and the row documents of each collection as hand-written SQL renders them.
    struct Fixture: Sendable {
        var tenant: String
        var documents: [AuditCollection: [JSONValue]]

        func ids(_ collection: AuditCollection) -> Set<String> {
            Set(documents[collection, default: []].map { AuditQueryTests.idText($0["id"]) })
        }
    }

    static let base: Int64 = 1_796_000_000_000_000  // 2026-11-30T00:53:20Z, in microseconds

    /// Inserts a deterministic mix of rows for `tenant` (the same seed gives the same values, new ids).
    static func insertFixture(_ client: PostgresClient, tenant: String, seed: UInt64) async throws -> Fixture {
        var random = SplitMix64(seed: seed)
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        func time(_ micros: Int64) -> String { CanonicalTimestamp.string(microseconds: micros) }
        let channels = ["sms", "email", "webhook", "Sms", "o'brien"]
        // Some instants repeat, so that ordering needs the id to be total.
        let ties = (0..<4).map { base + Int64($0) * 3_600_000_000 }

        var n: (ids: [UUID], created: [String], versions: [String], keys: [String], requests: [String]) = ([], [], [], [], [])
        var d: (ids: [UUID], notifications: [UUID], channels: [String], statuses: [String], counts: [Int], errors: [String],
                providerIDs: [String], created: [String], updated: [String]) = ([], [], [], [], [], [], [], [], [])
        var a: (deliveries: [UUID], notifications: [UUID], numbers: [Int], started: [String], finished: [String],
                outcomes: [String], statuses: [Int], errors: [String], providerIDs: [String], workers: [String],
                providers: [String], channels: [String]) = ([], [], [], [], [], [], [], [], [], [], [], [])
        for index in 0..<24 {
            let id = UUID()
            let created = base + Int64(index) * 2_220_000_000 + Int64(random.next() % 1_000_000)
            var metadata: [String: JSONValue] = [
                "plan": pick(["pro", "free", "Pro"]), "n": pick([5, 5.5, 10, -1]), "tags": pick([["a", "b"], ["b"], []]),
                "nested": ["k": pick(["v", "w"])],
            ]
            if random.next() % 3 == 0 { metadata["note"] = .null }
            if random.next() % 2 == 0 { metadata["campaign"] = pick(["black-friday", "welcome", "we\"ird'; DROP TABLE notifications; --"]) }
            var request: [String: JSONValue] = [
                "channel": .string(pick(channels)), "to": ["email": .string("user\(index % 5)@example.com")], "metadata": .object(metadata),
            ]
            if random.next() % 2 == 0 { request["template"] = pick(["welcome", "reset"]) }
            n.ids.append(id)
            n.created.append(time(created))
            n.versions.append(pick(["v1", "v2"]))
            n.keys.append(index % 3 == 0 ? "" : "key-\(index)")
            n.requests.append(JSONWriter.string(.object(request)))
            for _ in 0..<(1 + Int(random.next() % 2)) {
                let deliveryID = UUID()
                let channel = pick(channels)
                let attempts = Int(random.next() % 4)
                d.ids.append(deliveryID)
                d.notifications.append(id)
                d.channels.append(channel)
                d.statuses.append(pick(["queued", "sent", "failed", "retrying", "cancelled"]))
                d.counts.append(attempts)
                d.errors.append(pick(["", "", "timeout after 10s", "HTTP 500"]))
                d.providerIDs.append(pick(["", "msg-\(index)"]))
                d.created.append(time(created + 1000))
                d.updated.append(time(random.next() % 4 == 0 ? pick(ties) : created + Int64(random.next() % 90_000_000_000)))
                for number in 0..<attempts {
                    let started = random.next() % 4 == 0 ? pick(ties) : created + Int64(random.next() % 50_000_000_000)
                    a.deliveries.append(deliveryID)
                    a.notifications.append(id)
                    a.numbers.append(number + 1)
                    a.started.append(time(started))
                    a.finished.append(time(started + Int64(random.next() % 2_000_000)))
                    a.outcomes.append(pick(["success", "success", "transient_failure", "permanent_failure", "ambiguous"]))
                    a.statuses.append(pick([0, 200, 500, 429]))
                    a.errors.append(pick(["", "", "connection refused", "Connection reset", "'; DROP TABLE attempts; --"]))
                    a.providerIDs.append(pick(["", "pm-\(number)"]))
                    a.workers.append(pick(["worker-1", "worker-2"]))
                    a.providers.append(pick(["primary", "backup"]))
                    a.channels.append(channel)
                }
            }
        }
        try await client.query(
            """
            INSERT INTO notifications (id, tenant, created_at, config_version, idempotency_key, request)
            SELECT id, \(tenant), created::timestamptz, version, NULLIF(key, ''), request::jsonb
            FROM unnest(\(n.ids)::uuid[], \(n.created)::text[], \(n.versions)::text[], \(n.keys)::text[], \(n.requests)::text[])
                AS t(id, created, version, key, request)
            """)
        try await client.query(
            """
            INSERT INTO deliveries (id, notification_id, tenant, channel, status, attempt_count, last_error,
                provider_message_id, created_at, updated_at)
            SELECT id, notification_id, \(tenant), channel, status, count, NULLIF(error, ''), NULLIF(provider_id, ''),
                created::timestamptz, updated::timestamptz
            FROM unnest(\(d.ids)::uuid[], \(d.notifications)::uuid[], \(d.channels)::text[], \(d.statuses)::text[],
                \(d.counts)::int[], \(d.errors)::text[], \(d.providerIDs)::text[], \(d.created)::text[], \(d.updated)::text[])
                AS t(id, notification_id, channel, status, count, error, provider_id, created, updated)
            """)
        try await client.query(
            """
            INSERT INTO attempts (delivery_id, notification_id, number, started_at, finished_at, outcome, http_status, error,
                provider_message_id, worker, provider, channel, tenant)
            SELECT delivery_id, notification_id, number, started::timestamptz, finished::timestamptz, outcome,
                NULLIF(status, 0), NULLIF(error, ''), NULLIF(provider_id, ''), worker, provider, channel, \(tenant)
            FROM unnest(\(a.deliveries)::uuid[], \(a.notifications)::uuid[], \(a.numbers)::int[], \(a.started)::text[],
                \(a.finished)::text[], \(a.outcomes)::text[], \(a.statuses)::int[], \(a.errors)::text[], \(a.providerIDs)::text[],
                \(a.workers)::text[], \(a.providers)::text[], \(a.channels)::text[])
                AS t(delivery_id, notification_id, number, started, finished, outcome, status, error, provider_id, worker,
                     provider, channel)
            """)
        var documents: [AuditCollection: [JSONValue]] = [:]
        for collection in AuditCollection.allCases {
            documents[collection] = try await referenceDocuments(client, collection, tenant: tenant)
        }
        return Fixture(tenant: tenant, documents: documents)
    }

    /// The row documents as hand-written SQL renders them (independently of `AuditStore`'s rendering).
    static func referenceDocuments(_ client: PostgresClient, _ collection: AuditCollection, tenant: String) async throws -> [JSONValue] {
        func time(_ column: String) -> String { "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" }
        let sql: String
        switch collection {
        case .attempts:
            sql = """
                SELECT jsonb_strip_nulls(jsonb_build_object('id', id, 'delivery_id', delivery_id, 'notification_id', notification_id,
                    'number', number, 'started_at', \(time("started_at")), 'finished_at', \(time("finished_at")),
                    'duration_ms', duration_ms, 'outcome', outcome, 'http_status', http_status, 'error', error,
                    'provider_message_id', provider_message_id, 'worker', worker, 'provider', provider, 'channel', channel))::text
                FROM attempts WHERE tenant = $1
                """
        case .deliveries:
            sql = """
                SELECT jsonb_strip_nulls(jsonb_build_object('id', id, 'notification_id', notification_id, 'channel', channel,
                    'status', status, 'attempt_count', attempt_count, 'last_error', last_error,
                    'provider_message_id', provider_message_id, 'created_at', \(time("created_at")),
                    'updated_at', \(time("updated_at"))))::text
                FROM deliveries WHERE tenant = $1
                """
        case .notifications:
            // Not jsonb_strip_nulls: the request keeps its own nulls.
            sql = """
                SELECT (jsonb_build_object('id', id, 'created_at', \(time("created_at")), 'config_version', config_version,
                    'request', request) || CASE WHEN idempotency_key IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('idempotency_key', idempotency_key) END)::text
                FROM notifications WHERE tenant = $1
                """
        }
        var bindings = PostgresBindings()
        bindings.append(tenant)
        var documents: [JSONValue] = []
        for try await text in try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings)).decode(String.self) {
            var document = try JSONValue.decode(text)
            // jsonb writes a whole double without a fraction; the row document keeps double columns doubles.
            if case .object(var members) = document, case .integer(let whole)? = members["duration_ms"] {
                members["duration_ms"] = .double(Double(whole))
                document = .object(members)
            }
            documents.append(document)
        }
        return documents
    }

    /// Runs `body` with fixtures for two tenants that hold the same values (different ids).
    static func withFixtures(
        _ body: @escaping @Sendable (PostgresClient, AuditStore, Fixture, Fixture) async throws -> Void
    ) async throws {
        try await TestServers.withDatabase { client in
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let a = try await insertFixture(client, tenant: "audit-a-\(suffix)", seed: 0x4155_4449_54)
            let b = try await insertFixture(client, tenant: "audit-b-\(suffix)", seed: 0x4155_4449_54)
            try await body(client, AuditStore(client: client, logger: TestServers.logger), a, b)
        }
    }

    static func idText(_ id: JSONValue?) -> String {
        switch id {
        case .integer(let value)?: String(value)
        case .string(let value)?: value
        default: "?"
        }
    }

    /// Every page of the query, in order.
    static func all(_ store: AuditStore, _ body: JSONValue, tenant: String, limit: Int = 1000) async throws -> (items: [JSONValue], pages: Int) {
        guard case .object(var members) = body else { fatalError("a body is an object") }
        members["limit"] = .integer(Int64(limit))
        var items: [JSONValue] = []
        var pages = 0
        while true {
            let page = try await store.run(try AuditQuery.parse(.object(members), tenant: tenant))
            items += page.items
            pages += 1
            guard let next = page.nextCursor else { return (items, pages) }
            #expect(page.items.count == limit)
            members["cursor"] = .string(next.token)
        }
    }

    /// The ids hand-written SQL selects, in the order given.
    static func handWritten(_ client: PostgresClient, _ collection: AuditCollection, tenant: String, where condition: String,
                            orderBy: String) async throws -> [String] {
        var bindings = PostgresBindings()
        bindings.append(tenant)
        let sql = "SELECT id::text FROM \(collection.rawValue) WHERE tenant = $1 AND (\(condition)) ORDER BY \(orderBy)"
        var ids: [String] = []
        for try await id in try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings)).decode(String.self) {
            ids.append(id)
        }
        return ids
    }

    // MARK: Agreement

    @Test func itemsAreTheRowDocuments() async throws {
        try await Self.withFixtures { _, store, a, _ in
            for collection in AuditCollection.allCases {
                let (items, _) = try await Self.all(store, ["collection": .string(collection.rawValue)], tenant: a.tenant)
                #expect(Set(items) == Set(a.documents[collection]!), "\(collection)")
                #expect(items.count > 20, "\(collection)")
            }
        }
    }

    /// (collection, filter, hand-written condition)
    static let handWrittenCases: [(AuditCollection, String, String)] = [
        (.attempts, #"{"channel": "sms", "outcome": {"$ne": "success"}, "started_at": {"$gte": "2026-11-30T06:00:00Z"}}"#,
         "channel = 'sms' AND outcome <> 'success' AND started_at >= '2026-11-30T06:00:00Z'"),
        (.attempts, #"{"http_status": {"$in": [500, null]}}"#, "http_status = 500 OR http_status IS NULL"),
        (.attempts, #"{"http_status": {"$ne": 200}}"#, "http_status IS DISTINCT FROM 200"),
        (.attempts, #"{"error": {"$regex": "^conn", "$options": "i"}}"#, "error ~* '^conn'"),
        (.attempts, #"{"started_at": {"$lt": "2026-11-30T12:00:00.5+02:00"}}"#, "started_at < '2026-11-30T10:00:00.5Z'"),
        (.attempts, #"{"started_at": "2026-11-30T01:53:20Z"}"#, "started_at = '2026-11-30T01:53:20Z'"),
        (.attempts, #"{"duration_ms": {"$gt": 500}, "number": {"$gte": 2}}"#, "duration_ms > 500 AND number >= 2"),
        (.attempts, #"{"$or": [{"channel": "email"}, {"provider_message_id": {"$exists": false}}]}"#,
         "channel = 'email' OR provider_message_id IS NULL"),
        (.attempts, #"{"$nor": [{"outcome": "success"}, {"worker": "worker-2"}]}"#, "NOT (outcome = 'success' OR worker = 'worker-2')"),
        (.attempts, #"{"channel": {"$gt": "Sms", "$lt": "sms"}}"#, #"channel COLLATE "C" > 'Sms' AND channel COLLATE "C" < 'sms'"#),
        (.attempts, #"{"channel": "o'brien", "error": "'; DROP TABLE attempts; --"}"#,
         "channel = 'o''brien' AND error = '''; DROP TABLE attempts; --'"),
        (.deliveries, #"{"status": "failed", "updated_at": {"$gte": "2026-11-30T03:00:00Z"}}"#,
         "status = 'failed' AND updated_at >= '2026-11-30T03:00:00Z'"),
        (.deliveries, #"{"last_error": null, "attempt_count": {"$not": {"$lt": 1}}}"#, "last_error IS NULL AND attempt_count >= 1"),
        (.deliveries, #"{"channel": {"$in": ["sms", "Sms"]}, "status": {"$nin": ["queued"]}}"#,
         "channel IN ('sms', 'Sms') AND status <> 'queued'"),
        (.notifications, #"{"metadata.plan": "pro"}"#, "request -> 'metadata' ->> 'plan' = 'pro'"),
        (.notifications, #"{"metadata.tags": "b"}"#, "request -> 'metadata' -> 'tags' ? 'b'"),
        (.notifications, #"{"metadata.n": {"$gte": 5.5}}"#, "(request -> 'metadata' ->> 'n')::numeric >= 5.5"),
        (.notifications, #"{"metadata.note": null}"#, "request -> 'metadata' -> 'note' IS NULL OR request -> 'metadata' -> 'note' = 'null'"),
        (.notifications, #"{"metadata.campaign": "we\"ird'; DROP TABLE notifications; --"}"#,
         #"request -> 'metadata' ->> 'campaign' = 'we"ird''; DROP TABLE notifications; --'"#),
        (.notifications, #"{"template": {"$exists": true}, "request.to.email": {"$regex": "^user[0-2]@"}}"#,
         "request ? 'template' AND request -> 'to' ->> 'email' ~ '^user[0-2]@'"),
        (.notifications, #"{"idempotency_key": {"$ne": null}, "config_version": "v2"}"#,
         "idempotency_key IS NOT NULL AND config_version = 'v2'"),
    ]

    @Test func returnsWhatHandWrittenSQLSelectsInOrder() async throws {
        try await Self.withFixtures { client, store, a, _ in
            var selective = 0
            for (collection, json, condition) in Self.handWrittenCases {
                let sort = collection.defaultSort
                let body: JSONValue = ["collection": .string(collection.rawValue), "filter": try JSONValue.decode(json)]
                let (items, _) = try await Self.all(store, body, tenant: a.tenant, limit: 5)
                let expected = try await Self.handWritten(
                    client, collection, tenant: a.tenant, where: condition, orderBy: "\(sort.field) DESC, id DESC")
                #expect(items.map { Self.idText($0["id"]) } == expected, "\(json)")
                if !expected.isEmpty, expected.count < a.documents[collection]!.count { selective += 1 }
            }
            #expect(selective >= Self.handWrittenCases.count - 2)
        }
    }

    /// Random filters (seeded) over every collection: the query returns exactly the row documents the
    /// filter accepts in memory.
    @Test func randomFiltersAgreeWithTheEvaluator() async throws {
        try await Self.withFixtures { _, store, a, b in
            var random = SplitMix64(seed: 0x4155_4449_5451)
            for collection in AuditCollection.allCases {
                let documents = a.documents[collection]!
                let generator = RandomAuditFilters(collection: collection, documents: documents)
                var compared = 0, rejected = 0, selective = 0
                for _ in 0..<250 {
                    let filter = generator.filter(depth: 2, &random)
                    let bound: SchemaFilter
                    do { bound = try SchemaFilter(filter, schema: collection.schema) } catch {
                        rejected += 1
                        continue
                    }
                    let body: JSONValue = ["collection": .string(collection.rawValue), "filter": filter]
                    let (items, _) = try await Self.all(store, body, tenant: a.tenant)
                    let expected = documents.filter { bound.matches($0) }
                    // Ids first: a readable failure; then the whole documents.
                    let ids = Set(items.map { Self.idText($0["id"]) }), expectedIDs = Set(expected.map { Self.idText($0["id"]) })
                    #expect(ids == expectedIDs, "\(collection) \(JSONWriter.string(filter))\nSQL: \(bound.sql().sql)")
                    if ids == expectedIDs { #expect(Set(items) == Set(expected)) }
                    #expect(ids.isDisjoint(with: b.ids(collection)))
                    compared += 1
                    if !expected.isEmpty, expected.count < documents.count { selective += 1 }
                }
                #expect(compared > 150 && rejected > 0, "\(collection)")
                #expect(selective > compared / 3, "\(collection)")
                print("AuditQueryTests: \(compared) random filters on \(collection) agree with the evaluator "
                    + "(\(selective) selective, \(rejected) rejected by the schema)")
            }
        }
    }

    // MARK: Tenants

    @Test func aTenantSeesOnlyItsOwnRowsWhateverTheFilter() async throws {
        try await Self.withFixtures { _, store, a, b in
            let everything = [
                #"{}"#, #"{"$or": [{"id": {"$exists": true}}, {"id": {"$exists": false}}]}"#,
                #"{"$nor": [{"id": {"$exists": false}}]}"#, #"{"$or": [{"$nor": [{"id": null}]}, {"id": null}]}"#,
                #"{"id": {"$not": {"$in": []}}}"#,
            ]
            for collection in AuditCollection.allCases {
                for json in everything {
                    for fixture in [a, b] {
                        let body: JSONValue = ["collection": .string(collection.rawValue), "filter": try JSONValue.decode(json)]
                        let (items, _) = try await Self.all(store, body, tenant: fixture.tenant, limit: 17)
                        #expect(Set(items.map { Self.idText($0["id"]) }) == fixture.ids(collection), "\(collection) \(json)")
                    }
                }
            }
            // The tenant is not a field, and a cursor can't carry one.
            let nosy: JSONValue = ["collection": "attempts", "filter": ["$or": [["tenant": .string(b.tenant)], ["id": 1]]]]
            #expect(throws: AuditRequestInvalid.self) { try AuditQuery.parse(nosy, tenant: a.tenant) }
            let otherTenant = try await Self.all(store, ["collection": "attempts"], tenant: "audit-nobody-\(UUID().uuidString)")
            #expect(otherTenant.items.isEmpty)
        }
    }

    // MARK: Pagination

    @Test func cursorsReturnEveryRowOnceInOrder() async throws {
        try await Self.withFixtures { client, store, a, _ in
            let sorts: [(AuditCollection, String, Int64)] = [
                (.attempts, "started_at", -1), (.attempts, "started_at", 1), (.attempts, "id", 1), (.attempts, "id", -1),
                (.attempts, "channel", 1), (.attempts, "duration_ms", -1), (.attempts, "number", -1), (.attempts, "delivery_id", 1),
                (.deliveries, "updated_at", -1), (.deliveries, "status", 1), (.notifications, "created_at", 1),
                (.notifications, "config_version", -1),
            ]
            for (collection, field, direction) in sorts {
                let narrowed = collection == .notifications
                    ? (#"{"config_version": {"$ne": "v1"}}"#, "config_version <> 'v1'")
                    : (#"{"id": {"$exists": true}, "$nor": [{"channel": "sms"}]}"#, "channel <> 'sms'")
                for (filter, sqlCondition) in [(#"{}"#, "true"), narrowed] {
                    let body: JSONValue = [
                        "collection": .string(collection.rawValue), "filter": try JSONValue.decode(filter),
                        "sort": .object([field: .integer(direction)]),
                    ]
                    let (items, pages) = try await Self.all(store, body, tenant: a.tenant, limit: 7)
                    let order = direction < 0 ? "DESC" : "ASC"
                    let expected = try await Self.handWritten(
                        client, collection, tenant: a.tenant, where: sqlCondition,
                        orderBy: field == "id" ? "id \(order)" : "\(field) \(order), id \(order)")
                    let ids = items.map { Self.idText($0["id"]) }
                    #expect(ids == expected, "\(collection) by \(field) \(direction) \(filter)")
                    #expect(Set(ids).count == ids.count)
                    #expect(pages == max(1, (expected.count + 6) / 7), "\(collection) by \(field)")
                }
            }
            // Ties on the sort field are ordered by id.
            let ties = a.documents[.attempts]!.map { $0["started_at"]! }
            #expect(Set(ties).count < ties.count)
        }
    }

    @Test func aCursorBelongsToItsCollectionAndSort() async throws {
        try await Self.withFixtures { _, store, a, _ in
            let first = try await store.run(try AuditQuery.parse(["collection": "attempts", "limit": 2], tenant: a.tenant))
            let token = try #require(first.nextCursor?.token)
            for body: JSONValue in [
                ["collection": "attempts", "sort": ["id": 1], "cursor": .string(token)],
                ["collection": "deliveries", "cursor": .string(token)],
            ] {
                #expect(throws: AuditRequestInvalid.self) { try AuditQuery.parse(body, tenant: a.tenant) }
            }
            let second = try await store.run(try AuditQuery.parse(["collection": "attempts", "limit": 2, "cursor": .string(token)], tenant: a.tenant))
            #expect(Set(second.items).isDisjoint(with: first.items))
        }
    }

    // MARK: Problems

    /// (body, the fields of the 422's errors)
    static let badRequests: [(String, [String])] = [
        (#"{"collection": "attempts", "filter": {"outcome": {"$nee": "success"}}}"#, ["/filter/outcome/$nee"]),
        (#"{"collection": "attempts", "filter": {"$or": [{"channel": "sms"}, {"tenant": "b"}]}}"#, ["/filter/$or/1/tenant"]),
        (#"{"collection": "attempts", "filter": {"started_at": {"$gte": "last week"}}}"#, ["/filter/started_at/$gte"]),
        (#"{"collection": "attempts", "filter": {"http_status": {"$in": [500, "503"]}}}"#, ["/filter/http_status/$in/1"]),
        (#"{"collection": "attempts", "filter": {"data.a/b": 1}}"#, ["/filter/data.a~1b"]),
        (#"{"collection": "attempts", "filter": [1]}"#, ["/filter"]),
        (#"{"collection": "attempt"}"#, ["/collection"]),
        (#"{}"#, ["/collection"]),
        (#"{"collection": "attempts", "sort": {"job": -1}}"#, ["/sort/job"]),
        (#"{"collection": "attempts", "sort": {"http_status": -1}}"#, ["/sort/http_status"]),
        (#"{"collection": "attempts", "sort": {"started_at": "desc"}}"#, ["/sort/started_at"]),
        (#"{"collection": "attempts", "sort": {"started_at": -1, "id": 1}}"#, ["/sort"]),
        (#"{"collection": "attempts", "limit": 1001}"#, ["/limit"]),
        (#"{"collection": "attempts", "limit": 0}"#, ["/limit"]),
        (#"{"collection": "attempts", "limit": 10.5}"#, ["/limit"]),
        (#"{"collection": "attempts", "cursor": "not-a-cursor"}"#, ["/cursor"]),
        (#"{"collection": "attempts", "tenant": "b", "limit": "x", "cursor": 5}"#, ["/tenant", "/limit", "/cursor"]),
        (#"{"collection": "nope", "filter": {"$bad": 1}, "limit": -1}"#, ["/collection", "/limit"]),
    ]

    @Test func badRequestsAre422sNamingJSONPointers() async throws {
        try await TestServers.withDatabase { client in
            let store = AuditStore(client: client, logger: TestServers.logger)
            for (json, fields) in Self.badRequests {
                do {
                    _ = try await auditQueryResponse(body: try JSONValue.decode(json), tenant: "default", store: store)
                    Issue.record("\(json) was accepted")
                } catch let problem as ProblemDetails {
                    #expect(problem.statusCode == 422, "\(json)")
                    #expect(problem.errors?.map(\.field) == fields, "\(json): \(problem.detail)")
                    #expect(problem.errors?.allSatisfy { !$0.message.isEmpty } ?? false)
                }
            }
            // The unknown field's message lists what is allowed.
            do {
                _ = try await auditQueryResponse(
                    body: ["collection": "deliveries", "filter": ["job": "x"]], tenant: "default", store: store)
            } catch let problem as ProblemDetails {
                #expect(problem.errors?.first?.message == "unknown field 'job'; the fields of deliveries are attempt_count, "
                    + "channel, created_at, id, last_error, notification_id, provider_message_id, status, updated_at")
            }
        }
    }

    /// Through HTTP, wired the way the gateway's router will wire it.
    @Test func overHTTP() async throws {
        try await Self.withFixtures { client, _, a, _ in
            let router = Router()
            let audit = AuditStore(client: client, logger: TestServers.logger)
            let tenant = a.tenant
            router.post("/v1/audit/query") { request, _ in
                let body = try JSONDecoder().decode(JSONValue.self, from: Data(try await request.body.collect(upTo: 1 << 20).readableBytesView))
                return try NotificationAPI.json(try await auditQueryResponse(body: body, tenant: tenant, store: audit))
            }
            try await Application(router: router, logger: TestServers.logger).test(.router) { http in
                let ok = try await http.execute(
                    uri: "/v1/audit/query", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"collection": "attempts", "filter": {"outcome": {"$ne": "success"}}, "limit": 3}"#))
                #expect(ok.status == .ok)
                let page = try JSONValue.decode(String(buffer: ok.body))
                #expect(page["collection"] == "attempts")
                #expect(page["items"]?.arrayValue?.count == 3)
                #expect(page["items"]?.arrayValue?.allSatisfy { $0["outcome"] != "success" } ?? false)
                #expect(page["next_cursor"]?.stringValue != nil)
                let bad = try await http.execute(
                    uri: "/v1/audit/query", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"collection": "attempts", "filter": {"outcome": {"$nee": "success"}}}"#))
                #expect(bad.status == .unprocessableContent)
                #expect(bad.headers[.contentType] == "application/problem+json")
                let problem = try JSONValue.decode(String(buffer: bad.body))
                #expect(problem["errors"]?.arrayValue?.first?["field"] == "/filter/outcome/$nee")
            }
        }
    }

    // MARK: Statement timeout

    @Test func theStatementTimeoutCancelsALongQuery() async throws {
        try await TestServers.withDatabase { client in
            let tenant = "audit-slow-\(UUID().uuidString.prefix(8).lowercased())"
            let id = UUID()
            // One notification whose metadata holds 200,000 strings: each $regex below scans all of them.
            try await client.query(
                """
                INSERT INTO notifications (id, tenant, request)
                SELECT \(id), \(tenant), jsonb_build_object('metadata', jsonb_build_object('big', jsonb_agg('item-' || i)))
                FROM generate_series(1, 200000) AS i
                """)
            let store = AuditStore(client: client, logger: TestServers.logger)
            let slow: JSONValue = [
                "collection": "notifications",
                "filter": ["$or": .array((0..<30).map { .object(["metadata.big": .object(["$regex": .string("^x\($0)")])]) })],
            ]
            let query = try AuditQuery.parse(slow, tenant: tenant)
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: AuditQueryTimedOut(limit: .milliseconds(200))) {
                _ = try await store.run(query, statementTimeout: .milliseconds(200))
            }
            #expect(clock.now - start < .seconds(3))
            do {
                _ = try await auditQueryResponse(body: slow, tenant: tenant, store: store, statementTimeout: .milliseconds(200))
                Issue.record("the slow query finished")
            } catch let problem as ProblemDetails {
                #expect(problem.statusCode == 422 && problem.type.hasSuffix("query-timeout"))
            }
            // The pool's connections are usable afterwards (the row itself is left unread: decoding
            // 200,000 strings is slow in a debug build).
            let page = try await store.run(try AuditQuery.parse(
                ["collection": "notifications", "filter": ["id": .string(id.lowercasedString), "template": "x"]], tenant: tenant))
            #expect(page.items.isEmpty)
            try await client.query("DELETE FROM notifications WHERE id = \(id)")
        }
    }
}

extension JSONValue {
    static func decode(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }
}

/// Random filters for one collection, with literals drawn mostly from the values its rows hold.
struct RandomAuditFilters {
    let collection: AuditCollection
    let documents: [JSONValue]

    var paths: [String] {
        switch collection {
        case .attempts:
            ["id", "delivery_id", "number", "started_at", "finished_at", "duration_ms", "outcome", "http_status", "error",
             "provider_message_id", "worker", "provider", "channel"]
        case .deliveries:
            ["id", "channel", "status", "attempt_count", "last_error", "provider_message_id", "created_at", "updated_at"]
        case .notifications:
            ["created_at", "config_version", "idempotency_key", "metadata.plan", "metadata.n", "metadata.tags", "metadata.note",
             "metadata.nested", "metadata.campaign", "metadata.missing", "template", "request.to.email", "request.channel",
             "request.metadata.tags.0", "metadata"]
        }
    }

    /// Values of every type, many of which a typed field refuses.
    static let generic: [JSONValue] = [
        .null, 0, 1, 2, 2.0, 2.5, 200, 500, 1e20, -1, "sms", "success", "failed", "pro", "x", "", "b", true, [], ["b"],
        "2026-11-30T12:00:00Z", "2026-11-30T12:00:00+02:00", "0190f5a2-0000-7000-8000-000000000001",
    ]

    func present(_ path: String) -> [JSONValue] {
        let lookup = path.hasPrefix("metadata") || path == "template" ? "request." + path : path
        return documents.flatMap { document -> [JSONValue] in
            guard let value = document.value(atPath: lookup) else { return [] }
            if case .array(let elements) = value { return [value] + elements }
            return [value]
        }
    }

    /// A value the rows hold, or one spelled differently (timestamps with an offset or cut to ms,
    /// uuids in upper case), or a generic one.
    func literal(_ path: String, _ random: inout SplitMix64) -> JSONValue {
        let here = present(path)
        guard !here.isEmpty, random.next() % 4 != 0 else { return FilterSQLTests.RandomFilters.pick(Self.generic, &random) }
        let value = FilterSQLTests.RandomFilters.pick(here, &random)
        guard case .string(let text) = value else { return value }
        if let micros = CanonicalTimestamp.microseconds(parsing: text), text.count == 27 {
            switch random.next() % 4 {
            case 0: return .string(String(CanonicalTimestamp.string(microseconds: micros + 7_200_000_000).dropLast()) + "+02:00")
            case 1: return .string(String(text.prefix(23)) + "Z")
            case 2: return .string(CanonicalTimestamp.string(microseconds: micros + Int64(random.next() % 3) - 1))
            default: return value
            }
        }
        if UUID(uuidString: text) != nil, random.next() % 2 == 0 { return .string(text.uppercased()) }
        return value
    }

    func orderable(_ path: String, _ random: inout SplitMix64) -> JSONValue {
        for _ in 0..<8 {
            let value = literal(path, &random)
            switch value {
            case .integer, .double, .string: return value
            default: continue
            }
        }
        return 1
    }

    static let patterns = ["^s", "ms$", "^[a-e]", "\\d", "^.{4,6}$", "a|b", "^$", "[^a-z]", "conn", "DROP", "^p"]

    func condition(_ path: String, depth: Int, _ random: inout SplitMix64) -> JSONValue {
        func pick<T>(_ values: [T], _ random: inout SplitMix64) -> T {
            FilterSQLTests.RandomFilters.pick(values, &random)
        }
        switch random.next() % 12 {
        case 0: return literal(path, &random)
        case 1: return ["$eq": literal(path, &random)]
        case 2: return ["$ne": literal(path, &random)]
        case 3: return [pick(["$gt", "$gte", "$lt", "$lte"], &random): orderable(path, &random)]
        case 4:
            return [pick(["$gt", "$gte"], &random): orderable(path, &random), pick(["$lt", "$lte"], &random): orderable(path, &random)]
        case 5, 6:
            let count = Int(random.next() % 4)
            return [pick(["$in", "$nin"], &random): .array((0..<count).map { _ in literal(path, &random) })]
        case 7: return ["$exists": .bool(random.next() % 2 == 0)]
        case 8:
            var operators: [String: JSONValue] = ["$regex": .string(pick(Self.patterns, &random))]
            if random.next() % 2 == 0 { operators["$options"] = "i" }
            return .object(operators)
        default:
            guard depth > 0 else { return ["$exists": true] }
            let inner = condition(path, depth: depth - 1, &random)
            if case .object(let members) = inner, members.keys.allSatisfy({ $0.hasPrefix("$") }) { return ["$not": inner] }
            return ["$not": ["$eq": inner]]
        }
    }

    func filter(depth: Int, _ random: inout SplitMix64) -> JSONValue {
        var members: [String: JSONValue] = [:]
        for _ in 0..<(random.next() % 3 == 0 ? 2 : 1) {
            if depth > 0, random.next() % 4 == 0 {
                let count = 1 + Int(random.next() % 3)
                members[FilterSQLTests.RandomFilters.pick(["$and", "$or", "$nor"], &random)] = .array(
                    (0..<count).map { _ in filter(depth: depth - 1, &random) })
            } else {
                let path = FilterSQLTests.RandomFilters.pick(paths, &random)
                members[path] = condition(path, depth: 1, &random)
            }
        }
        return .object(members)
    }
}
