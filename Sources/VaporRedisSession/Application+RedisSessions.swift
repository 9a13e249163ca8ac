#if Vapor
public import RedisSession
public import Vapor

extension Application.Sessions.Provider {
    /// Sessions in Redis through `store`, with a cookie that matches its expiry:
    /// `app.sessions.use(.redis(store))`.
    ///
    /// The cookie is `rsess` (or `cookie.name`), `HttpOnly`, `SameSite=Lax`, `Secure` as `cookie` says, and lives as
    /// long as the idle timeout (Vapor sends it again with every response that has a session, so it slides as the
    /// store's idle timeout does). A store given a `SessionCache` answers repeated loads from memory; the cache runs
    /// from the application's boot to its shutdown. The store is also reachable as `app.redisSessions` and
    /// `req.redisSessions`, for what Vapor's session API has no word for (log out everywhere, the user's devices).
    ///
    /// - Parameters:
    ///   - store: Where the sessions live.
    ///   - cookie: The cookie's name and attributes (`SessionCookie(secure: true)` in production).
    ///   - userKey: The session data's key for the signed-in user (default `userID`).
    public static func redis(
        _ store: RedisSessionStore, cookie: SessionCookie = SessionCookie(), userKey: String = "userID"
    ) -> Self {
        .init { app in
            app.register(store)
            let maxAge = Int(store.configuration.idleTimeout.components.seconds)
            app.sessions.configuration = SessionsConfiguration(cookieName: cookie.name) { id in
                HTTPCookies.Value(
                    string: id.string, expires: nil, maxAge: maxAge, domain: cookie.domain, path: cookie.path,
                    isSecure: cookie.secure, isHTTPOnly: true, sameSite: .lax)
            }
            app.sessions.use { _ in RedisSessionDriver(store: store, userKey: userKey) }
        }
    }
}

extension Application {
    /// The Redis session store `app.sessions.use(.redis(...))` or ``redisSessionMiddleware(_:cookie:unavailable:)``
    /// configured, or `nil`.
    public var redisSessions: RedisSessionStore? { storage[RedisSessionsKey.self] }

    /// The component's own session middleware on `store` (``RedisSessionMiddleware``, the visitor's session as
    /// `req.redisSession`): `app.middleware.use(app.redisSessionMiddleware(store))`.
    ///
    /// It also makes the store reachable as `app.redisSessions` and `req.redisSessions`, and runs the store's
    /// `SessionCache`, if it has one, from the application's boot to its shutdown.
    ///
    /// - Parameters:
    ///   - store: Where the sessions live.
    ///   - cookie: The cookie's name and attributes; by default `rsess`, not `Secure`, living as long as the store's
    ///     absolute lifetime (`SessionCookie(secure: true, maxAge: store.configuration.absoluteLifetime)` in
    ///     production).
    ///   - unavailable: The response while the store cannot answer; a plain-text `503` when omitted.
    public func redisSessionMiddleware(
        _ store: RedisSessionStore, cookie: SessionCookie? = nil,
        unavailable: (@Sendable (Request) -> Response)? = nil
    ) -> RedisSessionMiddleware {
        register(store)
        return RedisSessionMiddleware(
            store: store, cookie: cookie ?? SessionCookie(maxAge: store.configuration.absoluteLifetime),
            unavailable: unavailable)
    }

    /// Makes `store` the application's, and runs its session cache with the application (once per cache, however
    /// many times it is registered).
    func register(_ store: RedisSessionStore) {
        storage[RedisSessionsKey.self] = store
        // A store with a session cache answers repeated loads from memory; the cache runs with the app.
        guard let cache = store.cache else { return }
        var running = storage[RunningCachesKey.self] ?? []
        guard running.insert(ObjectIdentifier(cache)).inserted else { return }
        storage[RunningCachesKey.self] = running
        lifecycle.use(SessionStoreLifecycle(store: store))
    }
}

extension Request {
    /// The Redis session store of the application, for a log out everywhere:
    /// `try await req.redisSessions?.destroyAll(userID: user)`.
    public var redisSessions: RedisSessionStore? { application.redisSessions }
}

private struct RedisSessionsKey: StorageKey {
    typealias Value = RedisSessionStore
}

private struct RunningCachesKey: StorageKey {
    typealias Value = Set<ObjectIdentifier>
}
#endif  // Vapor
