import Foundation
import RedisClient
import Synchronization

/// The writes of ``RedisSessionStore``: what each kind of save sends, built from ``SessionRecord``.
extension RedisSessionStore {
    /// Runs the `create` script for `session` (new, or taken from another user), and marks it saved.
    func insert(
        _ session: inout Session, created: Int?, version: Int?, durable: Bool = false
    ) async throws(SessionError) {
        var arguments: [any RedisArgumentConvertible] = [
            idleMilliseconds, absoluteMilliseconds, session.userID ?? "", session.id.handle.text,
            created.map(String.init) ?? "", version.map(String.init) ?? "",
        ]
        let writes = try SessionRecord.writes(
            of: session, encryption: encryption, storageName: session.id.storageName)
        for (field, value) in writes {
            arguments.append(field)
            arguments.append(value)
        }
        var scriptKeys = [keys.session(session.id)]
        if let userID = session.userID { scriptKeys.append(keys.userIndex(userID)) }
        let values = try await run(SessionScripts.create, keys: scriptKeys, arguments: arguments, durable: durable)
        guard values.count == 2, let createdAt = values[0].int, let now = values[1].int else {
            throw SessionError(.corruptSession, "the create script answered \(values)")
        }
        session.createdAt = SessionRecord.date(milliseconds: createdAt)
        session.lastSeenAt = SessionRecord.date(milliseconds: now)
        session.markSaved(version: version ?? 1)
    }

    func commit(_ session: inout Session, regenerating: Bool) async throws(SessionError) {
        // Dropped whether or not the write succeeded: a failed reply does not prove that nothing changed.
        let original = session.id
        defer { cache?.invalidate(original) }
        // Limits are checked against the session as this request sees it (its loaded copy plus its changes).
        try configuration.checkLimits(count: session.attributes.count, bytes: session.encodedSize)
        if session.changesUser {
            try await changeUser(&session)
        } else if regenerating {
            try await move(&session, to: SessionID(tag: session.id.tag))
        } else {
            try await saveAttributes(&session)
        }
        counters.saves.add(1, ordering: .relaxed)
    }

    /// A plain attribute save: one `MULTI`/`EXEC` round trip, no Lua.
    ///
    /// `HEXISTS _c` inside the transaction tells whether the session still existed when the writes ran. If it did
    /// not (destroyed or expired meanwhile), the `HSET` has only left a fragment without `_c`, which no load accepts
    /// as a session; it is deleted at once and the save reports ``SessionErrorCode/sessionNotFound``. The expiry is
    /// the idle timeout, capped by `PEXPIREAT ... LT` at the absolute deadline, all in server time.
    private func saveAttributes(_ session: inout Session) async throws(SessionError) {
        let key = keys.session(session.id)
        let now = SessionRecord.milliseconds(Date())
        let created = SessionRecord.milliseconds(session.createdAt)
        var set: [any RedisArgumentConvertible] = ["HSET", key]
        let writes = try SessionRecord.writes(
            of: session, encryption: encryption, storageName: session.id.storageName)
        for (field, value) in writes {
            set.append(field)
            set.append(value)
        }
        set.append(SessionRecord.Metadata.touched.rawValue)
        set.append(now)
        var commands = [
            RedisCommand("HEXISTS", key, SessionRecord.Metadata.created.rawValue), RedisCommand(arguments: set),
        ]
        let removed = SessionRecord.removals(of: session)
        if !removed.isEmpty { commands.append(RedisCommand(strings: ["HDEL", key] + removed)) }
        commands.append(RedisCommand("HINCRBY", key, SessionRecord.Metadata.version.rawValue, 1))
        commands.append(RedisCommand("PEXPIRE", key, idleMilliseconds))
        commands.append(RedisCommand("PEXPIREAT", key, created + absoluteMilliseconds, "LT"))
        let results: [RedisValue]
        do {
            results = try await client.transaction(commands)
        } catch {
            throw mapError(error)
        }
        guard results.count == commands.count, let existed = results[0].int,
            let version = results[results.count - 3].int
        else {
            if let failure = results.first(where: { if case .error = $0 { true } else { false } }),
                case .error(let message) = failure
            {
                throw mapError(RedisError(.serverError, message))
            }
            throw SessionError(.corruptSession, "unexpected reply to a session save")
        }
        if existed == 0 {
            _ = try? await client.send("DEL", key)
            throw SessionError(.sessionNotFound, "session does not exist")
        }
        session.lastSeenAt = Date(timeIntervalSince1970: Double(now) / 1000)
        session.markSaved(version: version)
    }

    /// A regenerate for the same user: the `move` script renames the session inside its slot, one round trip.
    private func move(_ session: inout Session, to newID: SessionID) async throws(SessionError) {
        // Encrypted values are bound to the name the session is stored under: under the new name every one of
        // them is written again.
        let encryption = self.encryption
        var moving = session
        if encryption != nil { moving.markEverythingChanged() }
        let changed = try SessionRecord.writes(
            of: moving, encryption: encryption, storageName: newID.storageName)
        var arguments: [any RedisArgumentConvertible] = [
            idleMilliseconds, absoluteMilliseconds, session.id.handle.text, newID.handle.text, changed.count,
        ]
        for (field, value) in changed {
            arguments.append(field)
            arguments.append(value)
        }
        for field in SessionRecord.removals(of: session) { arguments.append(field) }
        var scriptKeys = [keys.session(session.id), keys.session(newID)]
        if let userID = session.storedUserID { scriptKeys.append(keys.userIndex(userID)) }
        let values = try await run(SessionScripts.move, keys: scriptKeys, arguments: arguments, durable: true)
        guard values.count == 3, let version = values[0].int, let now = values[2].int else {
            throw SessionError(.corruptSession, "the move script answered \(values)")
        }
        session.id = newID
        session.lastSeenAt = SessionRecord.date(milliseconds: now)
        session.markSaved(version: version)
    }

    /// A change of user moves the session to the new user's slot, so it cannot be one script: `take` reads and
    /// deletes the session (a save racing it finds nothing), then `create` writes it under a new ID in the new slot,
    /// carrying its creation time so the absolute lifetime carries over. If the second step fails the session is
    /// gone and the caller gets the error (a 503): never two live IDs.
    private func changeUser(_ session: inout Session) async throws(SessionError) {
        var takeKeys = [keys.session(session.id)]
        if let previous = session.storedUserID { takeKeys.append(keys.userIndex(previous)) }
        let values = try await run(SessionScripts.take, keys: takeKeys, arguments: [session.id.handle.text])
        guard let fields = values.first?.array else {
            throw SessionError(.corruptSession, "the take script answered \(values)")
        }
        let stored = try SessionRecord.Fields(
            fields, encryption: encryption, storageName: session.id.storageName)
        guard let created = stored.created else { throw SessionError(.sessionNotFound, "session does not exist") }
        // This request's changes over what was stored, as a delta save would apply them.
        var attributes = stored.attributes
        for key in session.changedKeys { attributes[key] = session.attributes[key] ?? [] }
        for key in session.removedKeys { attributes[key] = nil }
        var moved = Session(
            id: session.userID.map(SessionID.init(userID:)) ?? SessionID(), userID: session.userID,
            createdAt: session.createdAt, lastSeenAt: session.lastSeenAt, version: stored.version + 1,
            attributes: [:], labels: session.labelsChanged ? session.labels : stored.labels)
        for (key, value) in attributes { moved.setEncoded(key, value) }
        moved.labelsChanged = true
        do {
            // Waiting after the create also covers the take before it: replication is one ordered stream.
            try await insert(&moved, created: created, version: stored.version + 1, durable: true)
        } catch  where error.code != .sessionNotFound {
            throw SessionError(
                .storeUnavailable, "the session was taken for a change of user but not stored again: \(error.message)",
                underlying: error.underlying)
        }
        session = moved
    }
}
