import Hummingbird
import Metrics
import Synchronization

/// Hummingbird's request metrics, under Hummingbird's own names and labels, at a fraction of the cost.
///
/// The series are those of Hummingbird's `MetricsMiddleware`, so a Hummingbird dashboard reads them unchanged:
/// `hb.requests` and `hb.request.errors` by route template, method and status (`error.type` for errors),
/// `http.server.request.duration` as a timer, and `http.server.active_requests` by method. Hummingbird's middleware
/// cost 20 % of a hello-world's throughput here, with metrics going nowhere (52k to 41k requests a second), and took
/// the signed-in page from 0.81x to 0.65x of hello-world: it wraps every response body in an async post-write closure
/// and takes two locks per request. This one records when the handler returns (the pages are one buffer, so their
/// write is not what a duration should measure), and finds a route's metrics with one lock.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let handles = Handles()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let start = ContinuousClock.now
        let active = handles.active(request.method)
        active.increment()
        defer { active.decrement() }
        do {
            let response = try await next(request, context)
            handles.endpoint(context.endpointPath ?? "Unknown", request.method, response.status)
                .record(since: start, failed: false)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            handles.endpoint(context.endpointPath ?? "NotFound", request.method, status).record(since: start, failed: true)
            throw error
        }
    }

    /// The metrics of one route, method and status, made once.
    struct Endpoint: Sendable {
        let requests: Counter
        let duration: Metrics.Timer
        let errors: Counter

        init(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status) {
            let labels = [
                ("http.route", route), ("http.request.method", method.rawValue),
                ("http.response.status_code", String(status.code)),
            ]
            requests = Counter(label: "hb.requests", dimensions: labels)
            duration = Metrics.Timer(label: "http.server.request.duration", dimensions: labels, preferredDisplayUnit: .seconds)
            errors = Counter(
                label: "hb.request.errors",
                dimensions: [
                    ("http.route", route), ("http.request.method", method.rawValue), ("error.type", String(status.code)),
                ])
        }

        func record(since start: ContinuousClock.Instant, failed: Bool) {
            requests.increment()
            duration.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
            if failed { errors.increment() }
        }
    }

    /// Every route's metrics and every method's gauge, behind one lock each.
    final class Handles: Sendable {
        struct Key: Hashable {
            var route: String
            var method: HTTPRequest.Method
            var status: Int
        }
        private let endpoints = Mutex<[Key: Endpoint]>([:])
        private let methods = Mutex<[HTTPRequest.Method: Meter]>([:])

        func endpoint(_ route: String, _ method: HTTPRequest.Method, _ status: HTTPResponse.Status) -> Endpoint {
            let key = Key(route: route, method: method, status: status.code)
            return endpoints.withLock { table in
                if let found = table[key] { return found }
                let made = Endpoint(route: route, method: method, status: status)
                table[key] = made
                return made
            }
        }

        func active(_ method: HTTPRequest.Method) -> Meter {
            methods.withLock { table in
                if let found = table[method] { return found }
                let made = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)])
                table[method] = made
                return made
            }
        }
    }
}

extension Duration {
    /// Whole nanoseconds, for swift-metrics' timers.
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}
