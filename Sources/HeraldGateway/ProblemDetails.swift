import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import Hummingbird
import Logging
import NIOCore

/// An RFC 9457 problem document, thrown by handlers and written as `application/problem+json`.
public struct ProblemDetails: Error, HTTPResponseError, Codable, Sendable {
    public var type: String
    public var title: String
    public var statusCode: Int
    public var detail: String
    public var errors: [FieldError]?
    /// Seconds a client should wait before trying again (`Retry-After`), for 429 and 503.
    public var retryAfter: Int?
    /// The `WWW-Authenticate` challenge, for 401.
    public var challenge: String?
    /// The methods the resource answers (`Allow`), for 405.
    public var allow: [String]?

    public var status: HTTPResponse.Status { .init(code: statusCode) }

    public init(
        type: String, title: String, status: HTTPResponse.Status, detail: String, errors: [FieldError]? = nil,
        retryAfter: Int? = nil
    ) {
        self.type = type
        self.title = title
        self.statusCode = status.code
        self.detail = detail
        self.errors = errors
        self.retryAfter = retryAfter
    }

    enum CodingKeys: String, CodingKey {
        case type, title, statusCode = "status", detail, errors
    }

    static let base = "https://herald.dev/problems/"

    public static func validation(_ errors: [FieldError]) -> ProblemDetails {
        let summary = errors.map(\.description).joined(separator: "; ")
        return ProblemDetails(
            type: base + "validation", title: "The request is not valid", status: .unprocessableContent,
            detail: summary, errors: errors)
    }

    public static func malformedJSON(_ detail: String, field: String = "") -> ProblemDetails {
        ProblemDetails(
            type: base + "malformed-json", title: "The body is not valid JSON", status: .badRequest, detail: detail,
            errors: [FieldError(field: field, message: detail)])
    }

    public static func notFound(_ detail: String) -> ProblemDetails {
        ProblemDetails(type: base + "not-found", title: "Not found", status: .notFound, detail: detail)
    }

    public static func unavailable(_ detail: String, retryAfter: Int? = nil) -> ProblemDetails {
        ProblemDetails(
            type: base + "unavailable", title: "Service unavailable", status: .serviceUnavailable, detail: detail,
            retryAfter: retryAfter)
    }

    public static func unauthenticated(_ detail: String) -> ProblemDetails {
        var problem = ProblemDetails(type: base + "unauthenticated", title: "Unauthenticated", status: .unauthorized, detail: detail)
        problem.challenge = #"Bearer realm="herald""#
        return problem
    }

    /// A request body, read up to `limit` bytes: a longer one is a 413 problem naming the limit.
    static func collectBody(_ request: Request, upTo limit: Int, what: String = "request bodies") async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: limit)
        } catch {
            throw ProblemDetails(
                type: base + "too-large", title: "The body is too large", status: .contentTooLarge,
                detail: "\(what) are limited to \(limit) bytes")
        }
    }

    public static func conflict(_ detail: String) -> ProblemDetails {
        ProblemDetails(type: base + "conflict", title: "Conflict", status: .conflict, detail: detail)
    }

    public static func invalidParameter(_ field: String, _ message: String) -> ProblemDetails {
        ProblemDetails(
            type: base + "validation", title: "The request is not valid", status: .badRequest,
            detail: "\(field): \(message)", errors: [FieldError(field: field, message: message)])
    }

    /// The database can't take the request now: the client should retry after a few seconds
    /// (with its `Idempotency-Key`, the retry can't store the notification twice).
    static func storeUnavailable() -> ProblemDetails {
        .unavailable(
            "the database is not answering; nothing may have been stored — retry after a few seconds with the same idempotency key",
            retryAfter: 5)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = try encoder.encode(self)
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if let challenge { headers[.wwwAuthenticate] = challenge }
        if let allow { headers[.allow] = allow.joined(separator: ", ") }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Turns Hummingbird's own errors (unknown route, wrong method, body too large) into problem documents too,
/// so every error a client sees has one shape.
///
/// Every other error becomes one too: the database unreachable or too slow → 503 with `Retry-After`;
/// anything else → a 500 problem whose detail names a reference that the log line carries, never an
/// empty body and never the error's text (it may hold internals).
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    /// The API's routes: a path that exists with other methods is 405 with `Allow`, not 404.
    var routes = RouteTable([])

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as ProblemDetails {
            throw problem
        } catch let error as HTTPError {
            let allowed = routes.methods(for: request.uri.path)
            if error.status == .notFound, !allowed.isEmpty {
                var problem = ProblemDetails(
                    type: ProblemDetails.base + "method-not-allowed", title: "Method not allowed", status: .methodNotAllowed,
                    detail: "\(request.method) is not served for \(request.uri.path); use \(allowed.joined(separator: " or "))")
                problem.allow = allowed
                throw problem
            }
            throw ProblemDetails(
                type: ProblemDetails.base + "http-\(error.status.code)", title: error.status.reasonPhrase,
                status: error.status, detail: error.body ?? error.status.reasonPhrase)
        } catch let error where StoreFailure.isUnavailable(error) || error is GroupCommitterShutDown {
            logger.warning("request answered 503: the database is unavailable", metadata: [
                "http.request.method": "\(request.method)", "url.path": "\(request.uri.path)",
                "error": "\(StoreFailure.describe(error))",
            ])
            throw ProblemDetails.storeUnavailable()
        } catch {
            let reference = UUID().uuidString.lowercased()
            logger.error("request failed with an unexpected error", metadata: [
                "http.request.method": "\(request.method)", "url.path": "\(request.uri.path)",
                "error": "\(StoreFailure.describe(error))", "error.id": "\(reference)",
            ])
            throw ProblemDetails(
                type: ProblemDetails.base + "internal", title: "Internal error", status: .internalServerError,
                detail: "the request failed unexpectedly; reference \(reference) in the gateway's log")
        }
    }
}

/// The API's routes (`GET /v1/notifications/{id}`), to tell "no such path" (404) from "no such method
/// for this path" (405). `{name}` segments match any one segment.
struct RouteTable: Sendable {
    private let routes: [(method: String, segments: [Substring])]

    init(_ routes: [String]) {
        self.routes = routes.compactMap { route in
            let parts = route.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), parts[1].split(separator: "/"))
        }
    }

    /// The methods `path` is served with, sorted; empty when no route has this path. Like the
    /// router, a literal segment wins over a capture (`/v1/notifications/batch` is not `{id}`).
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        func isCapture(_ pattern: Substring) -> Bool { pattern.hasPrefix("{") && pattern.hasSuffix("}") }
        let matching = routes.filter { route in
            route.segments.count == segments.count
                && zip(route.segments, segments).allSatisfy { pattern, segment in isCapture(pattern) || pattern == segment }
        }
        // Specificity: which segments are literal, first segments first.
        func literals(_ route: (method: String, segments: [Substring])) -> [Bool] { route.segments.map { !isCapture($0) } }
        guard let best = matching.map(literals).max(by: { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }) else { return [] }
        return Set(matching.filter { literals($0) == best }.map(\.method)).sorted()
    }
}
