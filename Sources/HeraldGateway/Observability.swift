import HTTPTypes
import HeraldCore
import Hummingbird
import Metrics

/// The outermost middleware: every request gets a trace context (the client's `traceparent`
/// continued, or a new trace), answered in the response's `traceparent`, and is counted and timed by
/// route template (`/v1/notifications/{id}`, never the path itself: label values stay bounded).
struct ObservabilityMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let received = request.headers[HTTPField.Name("traceparent")!].flatMap(TraceContext.init(traceparent:))
        let trace = received?.child() ?? .random()
        context.trace = trace
        let start = ContinuousClock.now
        do {
            var response = try await next(request, context)
            response.headers[HTTPField.Name("traceparent")!] = trace.traceparent
            Self.record(request, context, status: response.status.code, since: start)
            return response
        } catch let error as any HTTPResponseError {
            Self.record(request, context, status: error.status.code, since: start)
            throw error
        } catch {
            Self.record(request, context, status: 500, since: start)
            throw error
        }
    }

    static func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        let route = context.endpointPath ?? "unmatched"
        requests[RequestKey(method: request.method.rawValue, route: route, status: status)].increment()
        durations[route].record(duration: ContinuousClock.now - start)
    }

    struct RequestKey: Hashable, Sendable {
        var method: String
        var route: String
        var status: Int
    }

    static let requests = HandleCache<RequestKey, Counter> {
        Counter(label: "herald_http_requests_total", dimensions: [("method", $0.method), ("route", $0.route), ("status", String($0.status))])
    }
    static let durations = HandleCache<String, Timer> { Timer(label: "herald_http_request_duration_seconds", dimensions: [("route", $0)]) }
}
