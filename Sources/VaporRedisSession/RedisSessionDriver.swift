#if Vapor
public import RedisSession
public import Vapor

/// Vapor's `SessionDriver` on a `RedisSessionStore`: `app.sessions.use(.redis(store))`, and Vapor's
/// `req.session` lives in Redis with the component's guarantees.
///
/// - **Expiry**: the store's idle timeout slides on each load, and the absolute lifetime caps it (Vapor's own
///   Redis driver sets no TTL at all).
/// - **Delta saves**: Vapor asks the driver to update the session after every response that has one. The driver
///   compares the data with what it loaded for this request and writes only the keys that changed, in one round
///   trip; a request that changed nothing writes nothing.
/// - **A user per session**: the value under ``userKey`` (default `userID`) is the session's user. Setting it is a
///   sign-in: the session gets a new ID in that user's slot (the old one stops working), and Vapor sets the new
///   cookie. ``RedisSessionStore/destroyAll(userID:)`` (reached through `req.redisSessions`) logs the user out
///   everywhere.
/// - **Failures**: a store that cannot answer is `Abort(.serviceUnavailable)`, a 503, never a logout; a cookie that
///   is not a well-formed session ID costs no store call.
/// - **Empty sessions** (Vapor makes one whenever a handler touches `req.session`) are not stored until they hold
///   something. Check `req.hasSession` before reading `req.session` to keep anonymous visitors cookie-free.
///
/// A load the store's ``SessionCache`` answers, and an update that changed nothing, complete on the event loop
/// without a hop to the task pool; only Redis round trips run in a task.
public struct RedisSessionDriver: SessionDriver {
    /// Where the sessions live.
    public let store: RedisSessionStore
    /// The key of Vapor's session data that holds the signed-in user.
    public let userKey: String

    /// Creates a driver.
    ///
    /// - Parameters:
    ///   - store: Where the sessions live.
    ///   - userKey: The session data's key for the signed-in user (default `userID`).
    public init(store: RedisSessionStore, userKey: String = "userID") {
        self.store = store
        self.userKey = userKey
    }

    public func createSession(_ data: SessionData, for request: Request) -> EventLoopFuture<Vapor.SessionID> {
        // Vapor creates a session for any request that touched `req.session`, or sent a cookie that named no
        // session. An empty one is not worth a write: it gets an ID, and is stored once it holds something.
        guard !data.snapshot.isEmpty else {
            return request.eventLoop.makeSucceededFuture(Vapor.SessionID(string: RedisSession.SessionID().text))
        }
        return request.eventLoop.makeFutureWithTask { try await create(data, for: request) }
    }

    public func readSession(_ sessionID: Vapor.SessionID, for request: Request) -> EventLoopFuture<SessionData?> {
        guard let id = RedisSession.SessionID(sessionID.string) else {
            return request.eventLoop.makeSucceededFuture(nil)
        }
        if let session = store.loadFromMemory(id: id) {
            request.storage[LoadedSession.self] = session
            return request.eventLoop.makeSucceededFuture(data(of: session))
        }
        return request.eventLoop.makeFutureWithTask {
            let loaded = try await Self.unavailableAs503 { () async throws(SessionError) -> RedisSession.Session? in
                try await store.load(id: id)
            }
            guard let session = loaded else { return nil }
            request.storage[LoadedSession.self] = session
            return data(of: session)
        }
    }

    public func updateSession(
        _ sessionID: Vapor.SessionID, to data: SessionData, for request: Request
    ) -> EventLoopFuture<Vapor.SessionID> {
        // The session this request loaded is known by its text: no second parse (and hash) of the cookie.
        if let loaded = request.storage[LoadedSession.self], loaded.id.text == sessionID.string {
            let session = applying(data, to: loaded)
            guard session.hasChanges else { return request.eventLoop.makeSucceededFuture(sessionID) }
            return request.eventLoop.makeFutureWithTask { try await save(session, data, for: request) }
        }
        guard let id = RedisSession.SessionID(sessionID.string) else { return createSession(data, for: request) }
        return request.eventLoop.makeFutureWithTask {
            let stored = try await Self.unavailableAs503 { () async throws(SessionError) -> RedisSession.Session? in
                try await store.load(id: id)
            }
            guard let stored else { return try await create(data, for: request) }
            let session = applying(data, to: stored)
            guard session.hasChanges else { return sessionID }
            return try await save(session, data, for: request)
        }
    }

    public func deleteSession(_ sessionID: Vapor.SessionID, for request: Request) -> EventLoopFuture<Void> {
        guard let id = RedisSession.SessionID(sessionID.string) else {
            return request.eventLoop.makeSucceededVoidFuture()
        }
        request.storage[LoadedSession.self] = nil
        return request.eventLoop.makeFutureWithTask {
            try await Self.unavailableAs503 { () async throws(SessionError) in try await store.destroy(id: id) }
        }
    }

    // MARK: Internals

    private func create(_ data: SessionData, for request: Request) async throws -> Vapor.SessionID {
        var attributes = data.snapshot
        let user = attributes.removeValue(forKey: userKey)
        let session = try await Self.unavailableAs503 { () async throws(SessionError) -> RedisSession.Session in
            try await store.create(userID: user, attributes: attributes, labels: [:])
        }
        request.storage[LoadedSession.self] = session
        return Vapor.SessionID(string: session.id.text)
    }

    /// Writes what changed; a new ID when the user changed.
    private func save(
        _ session: RedisSession.Session, _ data: SessionData, for request: Request
    ) async throws -> Vapor.SessionID {
        var session = session
        do {
            try await Self.unavailableAs503 { () async throws(SessionError) in try await store.save(&session) }
        } catch let error as SessionError where error.code == .sessionNotFound {
            // Ended meanwhile (a logout elsewhere wins): start over rather than bring it back.
            return try await create(data, for: request)
        }
        request.storage[LoadedSession.self] = session
        return Vapor.SessionID(string: session.id.text)
    }

    /// Vapor's view of a session: its attributes as strings, and its user under ``userKey``.
    private func data(of session: RedisSession.Session) -> SessionData {
        var data = SessionData()
        for key in session.keys { data[key] = session[key] }
        if let user = session.userID { data[userKey] = user }
        return data
    }

    /// `session` with Vapor's data applied: only what differs is marked changed.
    private func applying(_ data: SessionData, to session: RedisSession.Session) -> RedisSession.Session {
        var session = session
        var wanted = data.snapshot
        let user = wanted.removeValue(forKey: userKey)
        if user != session.userID { session.userID = user }
        for key in session.keys where wanted[key] == nil { session.remove(key) }
        for (key, value) in wanted where session[key] != value { session[key] = value }
        return session
    }

    /// Runs a store call; `storeUnavailable` becomes a 503 Vapor answers, anything else stays itself.
    private static func unavailableAs503<Result>(
        _ body: () async throws(SessionError) -> Result
    ) async throws -> Result {
        do {
            return try await body()
        } catch  where error.code == .storeUnavailable {
            throw Abort(.serviceUnavailable, reason: "the session store is unavailable; try again")
        }
    }

    /// What this request loaded: the base the update compares with.
    private struct LoadedSession: StorageKey {
        typealias Value = RedisSession.Session
    }
}
#endif  // Vapor
