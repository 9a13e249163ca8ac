public import Hummingbird
import HTTPTypes
import Logging
import RedisClient
public import RedisSession
import Synchronization
import SettingsSync

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
        let header = request.headers[.cookie]
        var loaded: Session?
        var cookieIsStale = false
        if let id = cookie.sessionID(fromCookieHeader: header) {
            do {
                loaded = try await store.load(id: id)
                cookieIsStale = loaded == nil
            } catch {
                if error.code == .storeUnavailable { return refuse(request, context, error) }
                // Data under the prefix that is not a session: an anonymous visitor, said in the log.
                context.logger.warning("unreadable session", metadata: ["rsess.error": "\(error.code)"])
                cookieIsStale = true
            }
        } else if header?.contains(cookie.name + "=") == true {
            cookieIsStale = true
        }
        context.session.state.withLock { state in
            state.store = store
            state.loadedID = loaded?.id
            state.current = loaded
            state.cookieIsStale = cookieIsStale
        }

        var response: Response
        do {
            response = try await next(request, context)
        } catch  where Self.isStoreUnavailable(error) {
            return refuse(request, context, error)
        }

        let (current, loadedID, stale) = context.session.state.withLock { ($0.current, $0.loadedID, $0.cookieIsStale) }
        var setCookie: String?
        if var current {
            if current.hasChanges {
                do {
                    try await store.save(&current)
                    context.session.adopt(current)
                } catch {
                    // Ended meanwhile (a logout elsewhere wins): the response stands, signed out. A store that
                    // cannot answer is a 503; a change over the store's limits fails the request (a 500).
                    if error.code == .storeUnavailable { return refuse(request, context, error) }
                    guard error.code == .sessionNotFound else { throw error }
                    setCookie = cookie.expiredHeader()
                }
            }
            if setCookie == nil && current.id != loadedID { setCookie = cookie.header(for: current.id) }
        } else if loadedID != nil || stale {
            setCookie = cookie.expiredHeader()
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

    /// Whether a handler's error says that Redis could not answer: a store's, a flow's, or the client's own.
    static func isStoreUnavailable(_ error: any Error) -> Bool {
        switch error {
        case let error as SessionError: error.code == .storeUnavailable
        case let error as FlowError: error.code == .storeUnavailable
        case let error as SettingsError: error.code == .storeUnavailable
        case let error as RedisError:
            [.connectionFailed, .connectionClosed, .timeout, .notMaster, .closed].contains(error.code)
        default: false
        }
    }

    private static var plainUnavailable: Response {
        Response(
            status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8", .retryAfter: "1"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: "The session store is unavailable; try again.\n")))
    }
}
