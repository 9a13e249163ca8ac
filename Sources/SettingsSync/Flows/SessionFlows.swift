public import RedisSession

/// The login, settings and logout flows, independent of any web framework.
///
/// They mirror the original Django + django-allauth code paths and fix their two defects: a settings change
/// reaches the user's *other* sessions (the landing page reads the timezone through the settings cache, whose
/// source of truth is the settings record), and every other instance hears about it at once (an event on the bus).
///
/// ```swift
/// let flows = SessionFlows(sessions: store, settings: settingsStore, bus: bus, cache: cache, instanceID: "web-1")
/// var session = try await flows.login(session: anonymousSession, userID: "alice")  // new ID, event published
/// try await flows.changeTimezone(session: &session, to: "Asia/Tokyo")             // versioned write + event
/// ```
public struct SessionFlows: Sendable {
    /// Where sessions live.
    public let sessions: any SessionStore
    /// Where users' settings live.
    public let settings: UserSettingsStore
    /// Where events go.
    public let bus: SessionEventBus
    /// This instance's cache, updated at once with what this instance writes (so the redirect after a change
    /// never races the instance's own event). `nil` when the caller keeps no cache.
    public let cache: UserSettingsCache?
    /// This instance's ID, the `origin` of its events.
    public let instanceID: String
    /// The timezone of a user who has no settings record yet.
    public var defaultTimezone = "UTC"

    /// Creates the flows.
    public init(
        sessions: any SessionStore, settings: UserSettingsStore, bus: SessionEventBus, cache: UserSettingsCache?,
        instanceID: String
    ) {
        self.sessions = sessions
        self.settings = settings
        self.bus = bus
        self.cache = cache
        self.instanceID = instanceID
    }

    /// Signs a user in (after the caller checked the credentials).
    ///
    /// Gives the visitor's session a new ID in the user's slot (session-fixation defense) or creates a session when
    /// the visitor had none (or it vanished), copies the user's timezone into it (`session["timezone"]`, as
    /// Django's `user_logged_in` receiver did) and publishes `user.logged_in`.
    ///
    /// - Parameters:
    ///   - session: The visitor's current session, if any.
    ///   - userID: The authenticated user.
    ///   - attributes: More string attributes to store in the same write (a CSRF token, say).
    ///   - labels: What to show of this device in the user's list of sessions (user agent, client address).
    ///   - keeping: When the visitor's session belongs to *another* user, the attributes to carry over (a cart, a
    ///     locale); every other attribute of the previous user is dropped. An anonymous session keeps everything.
    /// - Returns: The signed-in session; set its ID as the cookie.
    public func login(
        session: Session?, userID: String, attributes: [String: String] = [:], labels: [String: String] = [:],
        keeping: Set<String> = []
    ) async throws(FlowError) -> Session {
        let record: UserSettings?
        do {
            record = try await settings.read(userID: userID)
        } catch {
            throw FlowError(error)
        }
        let timezone = record?.timezone ?? defaultTimezone
        var initial = attributes
        initial["timezone"] = timezone
        let signedIn: Session
        do {
            signedIn = try await sessions.signIn(
                session, userID: userID, attributes: initial, labels: labels, keeping: keeping)
        } catch {
            throw FlowError(error)
        }
        if let record { cache?.remember(userID, record) }
        await publishBestEffort(
            SessionEvent(
                kind: .loggedIn, user: userID, timezone: timezone, version: record?.version ?? 0, origin: instanceID))
        return signedIn
    }

    /// Changes the signed-in user's timezone.
    ///
    /// Validates the identifier, writes the settings record and bumps its version atomically, publishing
    /// `settings.changed` in the same atomic step; then updates the current session. An unknown identifier
    /// changes nothing and publishes nothing.
    ///
    /// - Returns: The settings as written.
    /// - Throws: ``FlowErrorCode/unknownTimezone``, ``FlowErrorCode/notSignedIn``, or a store's failure.
    @discardableResult
    public func changeTimezone(session: inout Session, to identifier: String) async throws(FlowError) -> UserSettings {
        guard UserSettings.isValidTimezone(identifier) else {
            throw FlowError(.unknownTimezone, "'\(identifier.prefix(64))' is not an IANA timezone identifier")
        }
        guard let userID = session.userID else { throw FlowError(.notSignedIn, "sign in to change settings") }
        let record: UserSettings
        do {
            record = try await settings.write(
                userID: userID, timezone: identifier,
                announcing: bus.announcement(.settingsChanged, user: userID, timezone: identifier, origin: instanceID))
        } catch {
            throw FlowError(error)
        }
        cache?.remember(userID, record)
        session["timezone"] = identifier
        do {
            try await sessions.save(&session)
        } catch {
            throw FlowError(error)
        }
        return record
    }

    /// Logs one session out and publishes `user.logged_out`.
    public func logout(session: Session) async throws(FlowError) {
        do {
            try await sessions.destroy(id: session.id)
        } catch {
            throw FlowError(error)
        }
        if let userID = session.userID {
            await publishBestEffort(
                SessionEvent(kind: .loggedOut, user: userID, version: session.version, origin: instanceID))
        }
    }

    /// Signs one of the user's sessions out by its handle ("sign out that device") and publishes `user.logged_out`
    /// when it was live. A handle of another user's session changes nothing.
    ///
    /// - Returns: Whether a live session was ended.
    @discardableResult
    public func signOut(handle: SessionHandle, userID: String) async throws(FlowError) -> Bool {
        let ended: Bool
        do {
            ended = try await sessions.destroy(handle: handle, userID: userID)
        } catch {
            throw FlowError(error)
        }
        if ended {
            await publishBestEffort(SessionEvent(kind: .loggedOut, user: userID, version: 0, origin: instanceID))
        }
        return ended
    }

    /// Logs every session of the user out, on every instance, and publishes `sessions.revoked`.
    ///
    /// - Returns: How many sessions were live.
    @discardableResult
    public func logoutEverywhere(userID: String) async throws(FlowError) -> Int {
        let count: Int
        do {
            count = try await sessions.destroyAll(userID: userID)
        } catch {
            throw FlowError(error)
        }
        await publishBestEffort(SessionEvent(kind: .sessionsRevoked, user: userID, version: 0, origin: instanceID))
        return count
    }

    /// Login and logout events are notifications: the state they describe is already in Redis, and no cache is wrong
    /// without them. A publish that fails after the write succeeded is therefore not reported as a failed login.
    private func publishBestEffort(_ event: SessionEvent) async {
        _ = try? await bus.publish(event)
    }
}
