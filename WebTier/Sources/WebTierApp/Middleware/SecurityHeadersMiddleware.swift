import HTTPTypes
public import Hummingbird
import Logging

// Header name literals: the initialiser fails only on invalid names.
extension HTTPField.Name {
    // swift-format-ignore: NeverForceUnwrap
    static let xFrameOptions = Self("X-Frame-Options")!
    // swift-format-ignore: NeverForceUnwrap
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    // swift-format-ignore: NeverForceUnwrap
    static let referrerPolicy = Self("Referrer-Policy")!
}

/// The headers that keep a browser from doing what the pages never ask for, on every response, errors included
/// (OWASP's HTTP Headers cheat sheet):
///
/// - `Content-Security-Policy`: scripts, styles and requests from this origin only, no inline script, no `eval`
///   (htmx is configured without it), no framing, no `<base>`, forms post here only.
/// - `X-Frame-Options: DENY`, for browsers that predate `frame-ancestors`: the one-click "Sign out" and "Log out
///   everywhere" forms cannot be clickjacked.
/// - `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`.
/// - `Cache-Control: no-store` unless the handler chose its own (the hashed static files): every page depends on
///   the session, the 404 page included, and no shared cache may keep one.
///
/// It sits outermost, so it also converts errors into their responses: a thrown `HTTPError` gets the headers, and
/// any other error is a `500` that says nothing about its cause.
public struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The policy every response carries.
    public static var contentSecurityPolicy: String {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    }

    public init() {}

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
        Self.apply(to: &response.headers)
        return response
    }

    /// Adds the headers to a response's fields (also for responses written below the router, such as
    /// ``HTTPStrictnessHandler``'s refusals).
    static func apply(to fields: inout HTTPFields) {
        fields[.contentSecurityPolicy] = contentSecurityPolicy
        fields[.xFrameOptions] = "DENY"
        fields[.xContentTypeOptions] = "nosniff"
        fields[.referrerPolicy] = "same-origin"
        if fields[.cacheControl] == nil { fields[.cacheControl] = "no-store" }
    }
}
