import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore

/// An RFC 9457 problem document, thrown by handlers and written as `application/problem+json`.
public struct ProblemDetails: Error, HTTPResponseError, Codable, Sendable {
    public var type: String
    public var title: String
    public var statusCode: Int
    public var detail: String
    public var errors: [FieldError]?

    public var status: HTTPResponse.Status { .init(code: statusCode) }

    public init(type: String, title: String, status: HTTPResponse.Status, detail: String, errors: [FieldError]? = nil) {
        self.type = type
        self.title = title
        self.statusCode = status.code
        self.detail = detail
        self.errors = errors
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

    public static func malformedJSON(_ detail: String) -> ProblemDetails {
        ProblemDetails(
            type: base + "malformed-json", title: "The body is not valid JSON", status: .badRequest, detail: detail,
            errors: [FieldError(field: "", message: detail)])
    }

    public static func notFound(_ detail: String) -> ProblemDetails {
        ProblemDetails(type: base + "not-found", title: "Not found", status: .notFound, detail: detail)
    }

    public static func unavailable(_ detail: String) -> ProblemDetails {
        ProblemDetails(type: base + "unavailable", title: "Service unavailable", status: .serviceUnavailable, detail: detail)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = try encoder.encode(self)
        return Response(
            status: status, headers: [.contentType: "application/problem+json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Turns Hummingbird's own errors (unknown route, wrong method, body too large) into problem documents too,
/// so every error a client sees has one shape.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as ProblemDetails {
            throw problem
        } catch let error as HTTPError {
            throw ProblemDetails(
                type: ProblemDetails.base + "http-\(error.status.code)", title: error.status.reasonPhrase,
                status: error.status, detail: error.body ?? error.status.reasonPhrase)
        }
    }
}
