import RedisClient
import Logging
import HTTPTypes
import Hummingbird
import RedisSession

/// Loads the visitor's session into the context: from the instance's session cache when it holds it, else one Redis
/// round trip, and none at all without a well-formed cookie.
///
/// A malformed, unknown or expired cookie gives an anonymous request (and the response clears the cookie); a Redis
/// that is down or slow gives `503`, never an anonymous page: a timeout must not look like a logout.
struct SessionMiddleware: RouterMiddleware {
    let store: RedisSessionStore
    let cookie: SessionCookie

    func handle(
        _ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        let header = request.headers[.cookie]
        if let id = cookie.sessionID(fromCookieHeader: header) {
            do {
                context.session = try await store.load(id: id)
                context.staleSessionCookie = context.session == nil
            } catch  where error.code == .storeUnavailable {
                context.logger.error("session store unavailable", metadata: ["rsess.error": "\(error)"])
                return Pages.unavailable()
            } catch {
                // Corrupt data under the prefix: treat the visitor as anonymous and say so in the log.
                context.logger.warning("unreadable session", metadata: ["rsess.error": "\(error.code)"])
                context.staleSessionCookie = true
            }
        } else if header?.contains(cookie.name + "=") == true {
            context.staleSessionCookie = true
        }
        var response = try await next(request, context)
        if context.staleSessionCookie
            && !response.headers[values: .setCookie].contains(where: { $0.hasPrefix(cookie.name + "=") })
        {
            response.headers.append(HTTPField(name: .setCookie, value: cookie.expiredHeader()))
        }
        return response
    }
}
