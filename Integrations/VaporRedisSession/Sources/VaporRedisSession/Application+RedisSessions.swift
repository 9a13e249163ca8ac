public import RedisSession
public import Vapor

extension Application.Sessions.Provider {
    /// Sessions in Redis through `store`, with a cookie that matches its expiry:
    /// `app.sessions.use(.redis(store))`.
    ///
    /// The cookie is `rsess` (or `cookie.name`), `HttpOnly`, `SameSite=Lax`, `Secure` as `cookie` says, and lives as
    /// long as the idle timeout. A store given a `SessionCache` answers repeated loads from memory; the cache runs from
    /// the application's boot to its shutdown. The store is also reachable as `app.redisSessions` and `req.redisSessions`, for
    /// what Vapor's session API has no word for (log out everywhere, the user's devices).
    ///
    /// - Parameters:
    ///   - store: Where the sessions live.
    ///   - cookie: The cookie's name and attributes (`SessionCookie(secure: true)` in production).
    ///   - userKey: The session data's key for the signed-in user (default `userID`).
    public static func redis(
        _ store: RedisSessionStore, cookie: SessionCookie = SessionCookie(), userKey: String = "userID"
    ) -> Self {
        .init { app in
            app.storage[RedisSessionsKey.self] = store
            let maxAge = Int(store.configuration.idleTimeout.components.seconds)
            app.sessions.configuration = SessionsConfiguration(cookieName: cookie.name) { id in
                HTTPCookies.Value(
                    string: id.string, expires: nil, maxAge: maxAge, domain: cookie.domain, path: cookie.path,
                    isSecure: cookie.secure, isHTTPOnly: true, sameSite: .lax)
            }
            app.sessions.use { _ in RedisSessionDriver(store: store, userKey: userKey) }
            // A store with a session cache answers repeated loads from memory; the cache runs with the app.
            if let cache = store.cache { app.lifecycle.use(SessionCacheLifecycle(cache: cache)) }
        }
    }
}

extension Application {
    /// The Redis session store `app.sessions.use(.redis(...))` configured, or `nil`.
    public var redisSessions: RedisSessionStore? { storage[RedisSessionsKey.self] }
}

extension Request {
    /// The Redis session store of the application, for a log out everywhere:
    /// `try await req.redisSessions?.destroyAll(userID: user)`.
    public var redisSessions: RedisSessionStore? { application.redisSessions }
}

private struct RedisSessionsKey: StorageKey {
    typealias Value = RedisSessionStore
}
