import HTTPTypes
import HeraldCore
import HeraldStore

/// The answer to `POST /v1/audit/query`: one page of rows (row documents, see `FilterSchema`), and
/// `next_cursor` when more rows follow.
public struct AuditQueryResponse: Encodable, Sendable {
    public var collection: String
    public var items: [JSONValue]
    public var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case collection, items, nextCursor = "next_cursor"
    }
}

/// `POST /v1/audit/query` for the authenticated `tenant`: reads the body (`AuditQuery.parse`), runs it
/// and answers one page. Client errors are `ProblemDetails`: 422 naming the JSON Pointer of every
/// wrong part (`/filter/outcome/$nee`, `/sort/worker`, `/cursor`), and 422 `query-timeout` when
/// PostgreSQL cancels the query after `statementTimeout`. A database that doesn't answer surfaces as
/// its own error, which `ProblemMiddleware` turns into 503.
public func auditQueryResponse(
    body: JSONValue, tenant: String, store: AuditStore, statementTimeout: Duration = AuditStore.defaultStatementTimeout
) async throws -> AuditQueryResponse {
    let query: AuditQuery
    do {
        query = try AuditQuery.parse(body, tenant: tenant)
    } catch {
        throw ProblemDetails.validation(error.errors)
    }
    let page: AuditPage
    do {
        page = try await store.run(query, statementTimeout: statementTimeout)
    } catch let timeout as AuditQueryTimedOut {
        // The client's query is too expensive as written: retrying the same one won't help (not a 503).
        throw ProblemDetails(
            type: ProblemDetails.base + "query-timeout", title: "The query took too long", status: .unprocessableContent,
            detail: timeout.description, errors: [FieldError(field: "/filter", message: timeout.description)])
    }
    return AuditQueryResponse(collection: query.collection.rawValue, items: page.items, nextCursor: page.nextCursor?.token)
}
