#if Hummingbird
public import Hummingbird
import HTTPTypes
import Logging
public import RedisSession

/// Loads the visitor's session before the handler and writes back what the handler did, after it.
///
/// - Before: a request without a well-formed session cookie costs no store call at all; one with a cookie loads the
///   session (from the instance's ``SessionCache`` when the store has one, else one Redis round trip) into
///   ``RedisSessionRequestContext/session``.
/// - After: a session the handler changed is saved, only what changed, in one round trip; a session that got a new
///   ID (``RequestSession/signIn(userID:attributes:labels:keeping:)``, ``RequestSession/adopt(_:)``) gets its cookie;
///   a session that ended, or a cookie that named no live session, gets the cookie cleared.
/// - A store that cannot answer (`storeUnavailable`, when loading, saving, or thrown by the handler) is a `503`,
///   never an anonymous page: a timeout must not look like a logout.
///
/// ```swift
/// let router = Router(context: AppContext.self)
/// router.add(middleware: RedisSessionMiddleware(store: store, cookie: SessionCookie(secure: true)))
/// ```
public struct RedisSessionMiddleware<Context: RedisSessionRequestContext>: RouterMiddleware {
    /// Where sessions live.
    public let store: any SessionStore
    /// The session cookie's name and attributes.
    public let cookie: SessionCookie
    /// What a request gets while the store is unavailable (a plain `503` by default).
    public let unavailable: @Sendable (Request, Context) -> Response
    /// Called once per request the store could not serve, for metrics.
    let onUnavailable: (@Sendable () -> Void)?

    /// Creates the middleware.
    ///
    /// - Parameters:
    ///   - store: Where sessions live: a `RedisSessionStore`, or a `MemorySessionStore` in an application's tests.
    ///   - cookie: The session cookie's name and attributes.
    ///   - unavailable: The response while the store cannot answer; a plain-text `503` with `Retry-After: 1` when
    ///     omitted.
    public init(
        store: any SessionStore, cookie: SessionCookie,
        unavailable: (@Sendable (Request, Context) -> Response)? = nil
    ) {
        self.init(store: store, cookie: cookie, unavailable: unavailable, onUnavailable: nil)
    }

    init(
        store: any SessionStore, cookie: SessionCookie, unavailable: (@Sendable (Request, Context) -> Response)?,
        onUnavailable: (@Sendable () -> Void)?
    ) {
        self.store = store
        self.cookie = cookie
        self.unavailable = unavailable ?? { _, _ in Self.plainUnavailable }
        self.onUnavailable = onUnavailable
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let session = context.session
        if case .load(let id) = session.start(store: store, cookie: cookie, cookieHeader: request.headers[.cookie]) {
            do {
                if let unreadable = try await session.load(id) {
                    // Data under the prefix that is not a session: an anonymous visitor, said in the log.
                    // The message names what is wrong (an unknown encryption key, say), never the session ID.
                    context.logger.warning(
                        "unreadable session", metadata: ["rsess.error": "\(unreadable.code): \(unreadable.message)"])
                }
            } catch {
                return refuse(request, context, error)
            }
        }

        var response: Response
        do {
            response = try await next(request, context)
        } catch  where isStoreUnavailable(error) {
            return refuse(request, context, error)
        }

        let setCookie: String?
        switch session.completion() {
        case .ready(let header):
            setCookie = header
        case .needsSave:
            do {
                setCookie = try await session.finish()
            } catch {
                // A store that cannot answer is a 503; a change over the store's limits fails the request (a 500).
                if error.isStoreUnavailable { return refuse(request, context, error) }
                throw error
            }
        }
        if let setCookie,
            !response.headers[values: .setCookie].contains(where: { $0.hasPrefix(cookie.name + "=") })
        {
            response.headers.append(HTTPField(name: .setCookie, value: setCookie))
        }
        return response
    }

    private func refuse(_ request: Request, _ context: Context, _ error: any Error) -> Response {
        context.logger.error("session store unavailable", metadata: ["rsess.error": "\(error)"])
        onUnavailable?()
        return unavailable(request, context)
    }

    private static var plainUnavailable: Response {
        Response(
            status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8", .retryAfter: "1"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: "The session store is unavailable; try again.\n")))
    }
}
#endif  // Hummingbird
