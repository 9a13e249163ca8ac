import Synchronization

/// The visitor's session as a request handler sees it, and what the handler does with it: read it, change it (saved
/// after the handler, only what changed), sign a user in (a new ID) or the visitor out.
///
/// A framework integration holds one per request (on Hummingbird's request context, in Vapor's request storage). Its
/// middleware calls ``start(store:cookie:cookieHeader:)`` before the handler and ``finish()`` after it; the handler
/// only sees the session.
///
/// ```swift
/// router.post("/theme") { request, context in
///     context.session.update { $0["theme"] = "dark" }  // saved after this handler, one round trip
///     return Response(status: .noContent)
/// }
/// ```
public final class RequestSession: Sendable {
    struct State {
        /// The store the middleware loaded from; `nil` before the middleware ran.
        var store: (any SessionStore)?
        /// The cookie policy the middleware read the request with.
        var cookie: SessionCookie?
        /// The session the request carried, as loaded.
        var loadedID: SessionID?
        /// The session now: loaded, changed, signed in or gone.
        var current: Session?
        /// The cookie named no live session: the response clears it.
        var cookieIsStale = false
    }

    let state = Mutex(State())

    /// An empty session slot; the middleware fills it.
    public init() {}

    /// The visitor's session: `nil` for an anonymous visitor (no cookie, or one that names no live session).
    public var current: Session? { state.withLock { $0.current } }

    /// The signed-in user, if any.
    public var userID: String? { state.withLock { $0.current?.userID } }

    /// Changes the session; the middleware saves what changed after the handler, in one round trip.
    ///
    /// `body` runs outside the slot's lock, so it may read the slot again; a `body` that throws changes nothing.
    ///
    /// - Returns: What `body` returned, or `nil` when the visitor has no session (nothing is created).
    @discardableResult
    public func update<Result>(_ body: (inout Session) throws -> Result) rethrows -> Result? {
        guard var session = current else { return nil }
        let result = try body(&session)
        adopt(session)
        return result
    }

    /// Signs `userID` in now: the visitor's session (or a new one) gets a new ID in the user's slot, the old ID stops
    /// working at once (session fixation), and the response sets the new cookie.
    ///
    /// - Parameters:
    ///   - userID: The authenticated user.
    ///   - attributes: String attributes to store with the sign-in.
    ///   - labels: What to show of this device in the user's list of sessions.
    ///   - keeping: When the visitor's session belongs to another user, the attributes to carry over; every other
    ///     attribute of that user is dropped. An anonymous session keeps everything.
    /// - Returns: The signed-in session.
    @discardableResult
    public func signIn(
        userID: String, attributes: [String: String] = [:], labels: [String: String] = [:],
        keeping: Set<String> = []
    ) async throws(SessionError) -> Session {
        let (store, existing) = state.withLock { ($0.store, $0.current) }
        guard let store else { throw Self.notStarted }
        let signedIn = try await store.signIn(
            existing, userID: userID, attributes: attributes, labels: labels, keeping: keeping)
        adopt(signedIn)
        return signedIn
    }

    /// Makes `session` the visitor's: one that the application signed in or created itself (for example through
    /// `SessionFlows`). The response sets its cookie.
    public func adopt(_ session: Session) {
        state.withLock { $0.current = session }
    }

    /// Ends the visitor's session now; the response clears the cookie.
    public func signOut() async throws(SessionError) {
        let (store, existing) = state.withLock { ($0.store, $0.current) }
        guard let existing else { return }
        guard let store else { throw Self.notStarted }
        try await store.destroy(id: existing.id)
        ended()
    }

    /// The session ended elsewhere (a flow destroyed it, or a log out everywhere): forget it; the response clears
    /// the cookie.
    public func ended() {
        state.withLock { $0.current = nil }
    }

    static let notStarted = SessionError(
        .storeUnavailable, "no session middleware ran for this request: add the integration's middleware first")
}
