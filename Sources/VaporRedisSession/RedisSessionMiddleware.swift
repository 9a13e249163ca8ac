#if Vapor
public import RedisSession
public import Vapor

/// The component's own sessions for Vapor, beside Vapor's `SessionDriver`: the visitor's session as
/// `req.redisSession`, a ``RequestSession`` with the store's typed attributes, sign-in and sign-out.
///
/// ```swift
/// app.middleware.use(app.redisSessionMiddleware(store))
/// app.post("login") { req async throws -> HTTPStatus in
///     try await req.redisSession.signIn(userID: "alice")  // after checking the password
///     return .noContent
/// }
/// ```
///
/// - Before the handler: a request without a well-formed session cookie costs no store call; one with a cookie
///   loads the session (from the store's ``SessionCache`` when it holds it, else one Redis round trip).
/// - After: a session the handler changed is saved, only what changed, in one round trip; a new ID (a sign-in) gets
///   its cookie; a session that ended, or a cookie that named no live session, gets the cookie cleared. Nothing else
///   sets a cookie: its `Max-Age` is the store's absolute lifetime, and the store enforces the idle timeout.
/// - A store that cannot answer (`storeUnavailable` when loading or saving, or thrown by the handler, from any layer)
///   is a `503`, never an anonymous page.
///
/// A request whose session the cache holds and the handler did not change is answered on its event loop, with no hop
/// to a task: that is what keeps a signed-in page close to a hello-world (`scripts/bench`).
public struct RedisSessionMiddleware: Middleware {
    /// Where sessions live.
    public let store: any SessionStore
    /// The session cookie's name and attributes.
    public let cookie: SessionCookie
    /// What a request gets while the store is unavailable.
    public let unavailable: @Sendable (Request) -> Response

    /// Creates the middleware. ``Vapor/Application/redisSessionMiddleware(_:cookie:unavailable:)`` also runs the
    /// store's session cache with the application and makes the store reachable as `req.redisSessions`.
    ///
    /// - Parameters:
    ///   - store: Where sessions live: a `RedisSessionStore`, or a `MemorySessionStore` in an application's tests.
    ///   - cookie: The session cookie's name and attributes; its `maxAge` should be the store's absolute lifetime.
    ///   - unavailable: The response while the store cannot answer; a plain-text `503` with `Retry-After: 1` when
    ///     omitted.
    public init(
        store: any SessionStore, cookie: SessionCookie, unavailable: (@Sendable (Request) -> Response)? = nil
    ) {
        self.store = store
        self.cookie = cookie
        self.unavailable = unavailable ?? { _ in Self.plainUnavailable() }
    }

    public func respond(to request: Request, chainingTo next: any Responder) -> EventLoopFuture<Response> {
        let session = request.redisSession
        let start = session.start(store: store, cookie: cookie, cookieHeader: request.headers.first(name: .cookie))
        let handled: EventLoopFuture<Response>
        switch start {
        case .ready:
            handled = next.respond(to: request)
        case .load(let id):
            handled = request.eventLoop.makeFutureWithTask {
                if let unreadable = try await session.load(id) {
                    // Data under the prefix that is not a session: an anonymous visitor, said in the log.
                    // The message names what is wrong (an unknown encryption key, say), never the session ID.
                    request.logger.warning(
                        "unreadable session", metadata: ["rsess.error": "\(unreadable.code): \(unreadable.message)"])
                }
            }.flatMap { next.respond(to: request) }
        }
        return handled.flatMap { response in
            switch session.completion() {
            case .ready(let setCookie):
                add(setCookie, to: response)
                return request.eventLoop.makeSucceededFuture(response)
            case .needsSave:
                return request.eventLoop.makeFutureWithTask {
                    add(try await session.finish(), to: response)
                    return response
                }
            }
        }.flatMapError { error in
            // A store that cannot answer, wherever it was noticed, is a 503; anything else is Vapor's to answer.
            guard isStoreUnavailable(error) else { return request.eventLoop.makeFailedFuture(error) }
            request.logger.error("session store unavailable", metadata: ["rsess.error": "\(error)"])
            return request.eventLoop.makeSucceededFuture(unavailable(request))
        }
    }

    private func add(_ setCookie: String?, to response: Response) {
        guard let setCookie else { return }
        // A handler that set the session cookie itself wins.
        let prefix = cookie.name + "="
        guard !response.headers[.setCookie].contains(where: { $0.hasPrefix(prefix) }) else { return }
        response.headers.add(name: .setCookie, value: setCookie)
    }

    private static func plainUnavailable() -> Response {
        Response(
            status: .serviceUnavailable,
            headers: ["Content-Type": "text/plain; charset=utf-8", "Retry-After": "1"],
            body: .init(string: "The session store is unavailable; try again.\n"))
    }
}

extension Request {
    /// The visitor's session, as ``RedisSessionMiddleware`` loaded it: read it, change it
    /// (`req.redisSession.update { $0["theme"] = "dark" }`, saved after the handler), sign a user in or out.
    ///
    /// Without the middleware, the slot stays empty: `current` is `nil` and a sign-in throws.
    public var redisSession: RequestSession {
        if let session = storage[RequestSessionKey.self] { return session }
        let session = RequestSession()
        storage[RequestSessionKey.self] = session
        return session
    }
}

private struct RequestSessionKey: StorageKey {
    typealias Value = RequestSession
}
#endif  // Vapor
