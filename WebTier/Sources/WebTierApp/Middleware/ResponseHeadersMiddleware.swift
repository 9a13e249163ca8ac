import HTTPTypes
public import Hummingbird
import Logging

// Header name literals: the initialiser fails only on invalid names.
extension HTTPField.Name {
    // swift-format-ignore: NeverForceUnwrap
    static let xInstance = Self("X-Instance")!
    // swift-format-ignore: NeverForceUnwrap
    static let hxRequest = Self("HX-Request")!
    // swift-format-ignore: NeverForceUnwrap
    static let hxRefresh = Self("HX-Refresh")!
    // swift-format-ignore: NeverForceUnwrap
    static let xCSRFToken = Self("X-CSRF-Token")!
    // swift-format-ignore: NeverForceUnwrap
    static let xFrameOptions = Self("X-Frame-Options")!
    // swift-format-ignore: NeverForceUnwrap
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    // swift-format-ignore: NeverForceUnwrap
    static let referrerPolicy = Self("Referrer-Policy")!
}

/// What every response carries, errors included, in one middleware (one layer per request, not two):
///
/// - `X-Instance: <instance id>`, so a load balancer's routing is visible to tests and people.
/// - The headers that keep a browser from doing what the pages never ask for (OWASP's HTTP Headers cheat sheet):
///   - `Content-Security-Policy`: scripts, styles and requests from this origin only, no inline script, no `eval`
///     (htmx is configured without it), no framing, no `<base>`, forms post here only;
///   - `X-Frame-Options: DENY`, for browsers that predate `frame-ancestors`: the one-click "Sign out" and "Log out
///     everywhere" forms cannot be clickjacked;
///   - `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`;
///   - `Cache-Control: no-store` unless the handler chose its own (the hashed static files): every page depends on
///     the session, the 404 page included, and no shared cache may keep one.
///
/// It sits outermost, so it also converts errors into their responses: a thrown `HTTPError` gets the headers, and
/// any other error is a `500` that says nothing about its cause.
public struct ResponseHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    let instanceID: String

    /// - Parameter instanceID: This instance's name, sent as `X-Instance`.
    public init(instanceID: String) { self.instanceID = instanceID }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["rsess.error": "\(error)"])
            response = Response(
                status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: .init(string: "Internal error.\n")))
        }
        response.headers.append(HTTPField(name: .xInstance, value: instanceID))
        SecurityHeaders.apply(to: &response.headers)
        return response
    }
}

/// The headers themselves, for the middleware and for responses written below the router (``HTTPStrictnessHandler``'s
/// refusals).
enum SecurityHeaders {
    /// The policy every response carries. `default-src 'self'` already covers scripts, styles and requests; what
    /// follows it narrows or adds: the `data:` favicon, no plugins, no framing, no `<base>`, forms post here only.
    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        + "form-action 'self'"

    /// The four fields, built once: appending them costs no validation and no search per response (setting each by
    /// name cost the signed-in page a few percent of its throughput).
    static let fields: HTTPFields = [
        .contentSecurityPolicy: contentSecurityPolicy, .xFrameOptions: "DENY", .xContentTypeOptions: "nosniff",
        .referrerPolicy: "same-origin",
    ]

    /// Adds the headers to a response's fields. No route sets the four, so they are appended, not replaced;
    /// `Cache-Control: no-store` only where the route chose no caching of its own.
    static func apply(to fields: inout HTTPFields) {
        fields.append(contentsOf: Self.fields)
        if !fields.contains(.cacheControl) { fields.append(HTTPField(name: .cacheControl, value: "no-store")) }
    }
}
