/// Where sessions live. ``RedisSessionStore`` is the production store; ``MemorySessionStore`` has the same
/// semantics in memory, for application unit tests.
///
/// The contract every conformer keeps:
/// - ``load(id:)`` returns `nil` for an unknown, expired or destroyed session, and extends the idle timeout
///   (at most once per touch interval), never past the absolute lifetime.
/// - ``save(_:)`` writes only the attributes that changed and removes those removed, atomically; it never
///   recreates a session that was destroyed meanwhile (it throws ``SessionErrorCode/sessionNotFound``), and a save
///   over the size or count limit throws and changes nothing.
/// - ``regenerate(_:)`` moves the data to a new ID; the old ID loads nothing afterwards.
/// - A change of ``Session/userID`` gives the session a new ID on its next save or regenerate, and the old ID loads
///   nothing afterwards. If the store fails half-way, the session is gone (the caller answers 503); there are never
///   two live IDs. A save racing it gets ``SessionErrorCode/sessionNotFound``.
/// - ``destroy(id:)``, ``destroy(handle:userID:)`` and ``destroyAll(userID:)`` take effect at once for every
///   instance (with a ``SessionCache``, on other instances once Redis' report of the change reaches them: see its
///   documentation).
/// - Nothing a store keeps or lists holds a session ID: sessions are named at rest by a SHA-256 of the ID, and
///   listed by ``SessionHandle``.
/// - Errors are ``SessionError``; an unreachable store is ``SessionErrorCode/storeUnavailable``, never `nil`.
public protocol SessionStore: Sendable {
    /// Creates and stores a new session.
    ///
    /// - Parameters:
    ///   - userID: The signed-in user, or `nil` for an anonymous session.
    ///   - attributes: Initial string attributes.
    ///   - labels: What the application records about the device (user agent, client address) for the user's list
    ///     of sessions.
    func create(
        userID: String?, attributes: [String: String], labels: [String: String]
    ) async throws(SessionError) -> Session

    /// Loads a session and slides its idle timeout. One round trip.
    func load(id: SessionID) async throws(SessionError) -> Session?

    /// The session, when the store can answer from this instance's memory without a round trip (and with the same
    /// guarantees as ``load(id:)``); `nil` when it cannot, and the caller calls ``load(id:)``. A probe: a store
    /// with a cache counts its hits, and leaves the miss for the load that follows.
    func loadFromMemory(id: SessionID) -> Session?

    /// Saves the session's changes (and a change of user) atomically. One round trip. Does nothing when there is
    /// nothing to save.
    func save(_ session: inout Session) async throws(SessionError)

    /// Gives the session a new ID, keeping its data (and saving pending changes); the old ID is dead.
    /// Call it at login: session-fixation defense.
    func regenerate(_ session: inout Session) async throws(SessionError)

    /// Destroys a session. Destroying an unknown session is not an error.
    func destroy(id: SessionID) async throws(SessionError)

    /// Destroys one of the user's sessions by its handle ("sign out that device"). A handle that names no live
    /// session of this user (another user's, or one already gone) destroys nothing.
    ///
    /// - Returns: Whether a live session was destroyed.
    @discardableResult
    func destroy(handle: SessionHandle, userID: String) async throws(SessionError) -> Bool

    /// The user's live sessions, oldest first, by handle; pruning the user's index as a side effect.
    func sessions(userID: String) async throws(SessionError) -> [SessionSummary]

    /// Destroys every session of the user ("log out everywhere"). Returns how many were live.
    @discardableResult
    func destroyAll(userID: String) async throws(SessionError) -> Int
}

extension SessionStore {
    /// `nil`: a store without a memory of its own always loads.
    public func loadFromMemory(id: SessionID) -> Session? { nil }

    /// Creates an anonymous or signed-in session with no attributes.
    public func create(userID: String? = nil) async throws(SessionError) -> Session {
        try await create(userID: userID, attributes: [:], labels: [:])
    }

    /// Creates an anonymous or signed-in session with attributes and no labels.
    public func create(userID: String?, attributes: [String: String]) async throws(SessionError) -> Session {
        try await create(userID: userID, attributes: attributes, labels: [:])
    }

    /// Parses a cookie value and loads the session it names; a malformed value gives `nil` without a store call.
    public func load(cookieValue: String?) async throws(SessionError) -> Session? {
        guard let cookieValue, let id = SessionID(cookieValue) else { return nil }
        return try await load(id: id)
    }

    /// Signs `userID` in on the visitor's session (after the application checked the credentials): the session gets
    /// a new ID in the user's slot, and the old ID stops working at once (a session-fixation defence). A visitor
    /// without a session, or whose session ended meanwhile, gets a new one.
    ///
    /// - Parameters:
    ///   - session: The visitor's current session, if any.
    ///   - userID: The authenticated user.
    ///   - attributes: String attributes to store in the same write.
    ///   - labels: What to show of this device in the user's list of sessions.
    ///   - keeping: When the visitor's session belongs to another user, the attributes to carry over (a cart, a
    ///     locale); every other attribute of that user is dropped. An anonymous session keeps everything.
    /// - Returns: The signed-in session; set its ID as the cookie.
    public func signIn(
        _ session: Session?, userID: String, attributes: [String: String] = [:], labels: [String: String] = [:],
        keeping: Set<String> = []
    ) async throws(SessionError) -> Session {
        guard var existing = session else {
            return try await create(userID: userID, attributes: attributes, labels: labels)
        }
        if let previous = existing.userID, previous != userID {
            // Signing in over another user's session: nothing of theirs carries over unless the app says so.
            for key in existing.keys where !keeping.contains(key) { existing.remove(key) }
        }
        existing.userID = userID
        for (key, value) in attributes { existing[key] = value }
        if !labels.isEmpty { existing.labels = labels }
        do {
            try await regenerate(&existing)
            return existing
        } catch  where error.code == .sessionNotFound {
            return try await create(userID: userID, attributes: attributes, labels: labels)
        }
    }
}
