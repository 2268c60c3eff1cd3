import Foundation
import HeraldCore
import HeraldStore
import Hummingbird

/// The query string of a listing route (`GET /v1/notifications`, `GET /v1/deadletters`), read one
/// way for all of them: only the names the route knows (400 naming an unknown one), `since` and
/// `until` as RFC 3339, `limit` in its range, `cursor` as a token this API returned.
struct ListingQuery {
    private let parameters: [String: String]

    init(_ request: Request, known: [String]) throws {
        var parameters: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            let name = String(key)
            guard known.contains(name) else {
                throw ProblemDetails.invalidParameter(name, "unknown query parameter; expected \(known.joined(separator: ", "))")
            }
            // PostgreSQL's text can't hold U+0000: refused here (400), not as a database error (found by schemathesis).
            guard !value.unicodeScalars.contains("\u{0}") else {
                throw ProblemDetails.invalidParameter(name, "contains the NUL character (U+0000), which is not allowed")
            }
            if parameters[name] == nil { parameters[name] = String(value) }
        }
        self.parameters = parameters
    }

    func string(_ name: String) -> String? { parameters[name] }

    func instant(_ name: String) throws -> Date? {
        guard let text = parameters[name] else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw ProblemDetails.invalidParameter(name, "must be an RFC 3339 date-time such as 2026-12-01T09:30:00Z")
        }
        return date
    }

    func limit(maximum: Int) throws -> Int? {
        guard let text = parameters["limit"] else { return nil }
        guard let limit = Int(text), (1...maximum).contains(limit) else {
            throw ProblemDetails.invalidParameter("limit", "must be a whole number from 1 to \(maximum)")
        }
        return limit
    }

    func cursor() throws -> ListingCursor? {
        guard let token = parameters["cursor"] else { return nil }
        guard let cursor = ListingCursor(token: token) else {
            throw ProblemDetails.invalidParameter("cursor", "is not a cursor this API returned")
        }
        return cursor
    }

    func status() throws -> DeliveryStatus? {
        guard let text = parameters["status"] else { return nil }
        guard let status = DeliveryStatus(rawValue: text) else {
            throw ProblemDetails.invalidParameter(
                "status", "must be one of \(DeliveryStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }
}
