import Synchronization

/// The middleware's side of a ``RequestSession``: what every framework integration does around a handler, written
/// once. A middleware calls, in order:
///
/// 1. ``RequestSession/start(store:cookie:cookieHeader:)``, and ``RequestSession/load(_:)`` when it asks for a load;
/// 2. the handler;
/// 3. ``RequestSession/completion()``, and ``RequestSession/finish()`` when a save is due; it adds the `Set-Cookie`
///    value they return to the response.
///
/// A `storeUnavailable` from any step is a `503` (``isStoreUnavailable(_:)``), never an anonymous page. The synchronous
/// steps let a middleware built on futures (Vapor's) answer a request whose session is in memory and unchanged
/// without leaving its event loop.
extension RequestSession {
    /// What a middleware does after ``start(store:cookie:cookieHeader:)``.
    public enum Start: Sendable, Equatable {
        /// The session is known: loaded from the store's memory, or there is none (no cookie, or a malformed one).
        case ready
        /// The cookie names this session and the store's memory does not hold it: call ``load(_:)``.
        case load(SessionID)
    }

    /// What a middleware does after the handler.
    public enum Completion: Sendable, Equatable {
        /// Nothing to write: the response only adds this `Set-Cookie` value, if any.
        case ready(setCookie: String?)
        /// The handler changed the session: ``finish()`` saves it, in one round trip.
        case needsSave
    }

    /// Before the handler: reads the session cookie from the request's `Cookie` header, and takes the session from
    /// the store's memory when it holds it. A request without a well-formed session cookie costs no store call.
    ///
    /// - Parameters:
    ///   - store: Where sessions live.
    ///   - cookie: The session cookie's name and attributes.
    ///   - cookieHeader: The request's `Cookie` header, if any.
    public func start(store: any SessionStore, cookie: SessionCookie, cookieHeader: String?) -> Start {
        let reading = cookie.read(fromCookieHeader: cookieHeader)
        var id: SessionID?
        if case .sessionID(let parsed) = reading { id = parsed }
        let loaded = id.flatMap { store.loadFromMemory(id: $0) }
        state.withLock { state in
            state.store = store
            state.cookie = cookie
            state.loadedID = loaded?.id
            state.current = loaded
            // A cookie of ours that is not a session ID: the response clears it.
            state.cookieIsStale = reading == .malformed
        }
        guard let id, loaded == nil else { return .ready }
        return .load(id)
    }

    /// Loads the session ``start(store:cookie:cookieHeader:)`` asked for, in one round trip. An unknown or expired
    /// session leaves the visitor anonymous, and the response clears the cookie.
    ///
    /// - Returns: The error, when the stored data is not a session (the visitor is anonymous; the integration logs
    ///   it).
    /// - Throws: `storeUnavailable`: answer `503`.
    @discardableResult
    public func load(_ id: SessionID) async throws(SessionError) -> SessionError? {
        guard let store = state.withLock({ $0.store }) else { throw Self.notStarted }
        var loaded: Session?
        var unreadable: SessionError?
        do {
            loaded = try await store.load(id: id)
        } catch {
            guard !error.isStoreUnavailable else { throw error }
            unreadable = error
        }
        state.withLock { state in
            state.loadedID = loaded?.id
            state.current = loaded
            state.cookieIsStale = loaded == nil
        }
        return unreadable
    }

    /// After the handler: whether a save is due, or else the `Set-Cookie` value the response needs.
    public func completion() -> Completion {
        state.withLock { state in
            if state.current?.hasChanges == true { return .needsSave }
            return .ready(setCookie: Self.setCookie(&state))
        }
    }

    /// After the handler: saves what the handler changed (one round trip, only what changed), then returns the
    /// `Set-Cookie` value the response needs: the new ID's after a sign-in, an expired one after a sign-out or for a
    /// cookie that named no live session, `nil` otherwise.
    ///
    /// A session that ended meanwhile (a log out elsewhere wins) is not brought back: the response clears the cookie.
    ///
    /// - Throws: `storeUnavailable` (answer `503`), or a save the store refused (`tooLarge`, `tooManyAttributes`).
    public func finish() async throws(SessionError) -> String? {
        let (store, pending) = state.withLock { ($0.store, $0.current) }
        if var session = pending, session.hasChanges {
            guard let store else { throw Self.notStarted }
            do {
                try await store.save(&session)
                adopt(session)
            } catch {
                guard error.code == .sessionNotFound else { throw error }
                ended()
            }
        }
        return state.withLock { Self.setCookie(&$0) }
    }

    /// The `Set-Cookie` value a response needs for the slot's state, if any. (`inout` only to read the state in place:
    /// a copy of it retains and releases every part of the session, on every request.)
    private static func setCookie(_ state: inout State) -> String? {
        guard let cookie = state.cookie else { return nil }
        if let current = state.current {
            return current.id == state.loadedID ? nil : cookie.header(for: current.id)
        }
        return state.loadedID != nil || state.cookieIsStale ? cookie.expiredHeader() : nil
    }
}
