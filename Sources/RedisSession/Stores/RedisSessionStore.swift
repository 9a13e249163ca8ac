import Foundation
public import RedisClient

/// Sessions in Redis: one hash per session, a per-user index, Lua scripts where atomicity needs them.
///
/// | operation | Redis commands | round trips |
/// | --- | --- | --- |
/// | ``load(id:)`` | `HGETALL` + `PTTL`, pipelined; once per touch interval also a detached `EVAL` (HSET, PEXPIRE) that nobody waits for | 1 |
/// | ``save(_:)`` | `MULTI`, `HEXISTS`, `HSET` (changed attributes + last seen), `HDEL` (if removals), `HINCRBY`, `PEXPIRE`, `PEXPIREAT LT`, `EXEC` | 1 |
/// | ``create(userID:attributes:)`` | `EVALSHA` (HSET, PEXPIRE, index ZADD) | 1 |
/// | ``regenerate(_:)``, a save that changes the user | `EVALSHA` (the `move` script: writes, RENAME, index) | 1 |
/// | ``destroy(id:)``, ``sessions(userID:)``, ``destroyAll(userID:)`` | `EVALSHA` | 1 |
///
/// A script unknown to the server (after a restart) is sent once with `EVAL`, transparently.
///
/// With a ``SessionCache``, a load of a session this instance loaded recently costs no round trip at all, and
/// every write through the store drops the entries it changes; see ``SessionCache`` for what keeps it exact.
public struct RedisSessionStore: SessionStore {
    /// The Redis pool the store uses.
    public let client: RedisClient
    /// Key prefix, timeouts and limits.
    public let configuration: SessionStoreConfiguration
    /// The instance's session cache, if it has one.
    public let cache: SessionCache?

    /// Creates a store on a client.
    ///
    /// - Parameters:
    ///   - client: The pool to send commands on.
    ///   - configuration: Key prefix, timeouts and limits.
    ///   - cache: A cache for repeated loads, run as a service beside the store; `nil` (the default) reads Redis
    ///     on every load. Its key prefix must be the configuration's.
    public init(
        client: RedisClient, configuration: SessionStoreConfiguration = SessionStoreConfiguration(),
        cache: SessionCache? = nil
    ) {
        precondition(
            cache.map { $0.keyPrefix == configuration.keyPrefix } ?? true,
            "the session cache must follow the store's key prefix")
        self.client = client
        self.configuration = configuration
        self.cache = cache
    }

    private func sessionKey(_ id: SessionID) -> String { configuration.keyPrefix + "s:" + id.text }
    private func userKey(_ userID: String) -> String { configuration.keyPrefix + "u:" + userID }
    private var idleMilliseconds: Int64 { configuration.idleTimeout.wholeMilliseconds }
    private var absoluteMilliseconds: Int64 { configuration.absoluteLifetime.wholeMilliseconds }

    public func create(userID: String?, attributes: [String: String]) async throws(SessionError) -> Session {
        var session = Session(
            id: SessionID(), userID: userID, createdAt: Date(), lastSeenAt: Date(), version: 1, attributes: [:])
        for (key, value) in attributes { session[key] = value }
        try configuration.checkLimits(count: session.attributes.count, bytes: session.encodedSize)
        var arguments: [any RedisArgumentConvertible] = [
            configuration.keyPrefix, session.id.text, idleMilliseconds, absoluteMilliseconds,
            userID.map { "=" + $0 } ?? "",
        ]
        for (key, value) in session.attributes {
            arguments.append("a:" + key)
            arguments.append(value)
        }
        let reply = try await run(SessionScripts.create, keys: [sessionKey(session.id)], arguments: arguments)
        let now = Self.date(milliseconds: reply.int ?? 0)
        session.createdAt = now
        session.lastSeenAt = now
        session.markSaved(version: 1)
        return session
    }

    public func load(id: SessionID) async throws(SessionError) -> Session? {
        if let cache, let (cached, ttl) = cache.session(id) {
            var session = cached
            if needsTouch(session, ttl: ttl) {
                // The touch changes the stored session; the next load reads what it wrote.
                cache.invalidate(id)
                touch(sessionKey(id))
                session.lastSeenAt = Date()
            }
            return session
        }
        let ticket = cache?.beginLoad(id)
        var loaded: Session?
        var ttl: Int64 = 0
        defer { if let ticket { cache?.finishLoad(ticket, with: loaded, ttlMilliseconds: ttl) } }
        let key = sessionKey(id)
        let replies: [RedisValue]
        do {
            replies = try await client.pipeline([
                RedisCommand(strings: ["HGETALL", key]), RedisCommand(strings: ["PTTL", key]),
            ])
        } catch let error as RedisError {
            throw mapError(error)
        } catch {
            throw SessionError(.storeUnavailable, "\(error)")
        }
        guard replies.count == 2 else { throw SessionError(.corruptSession, "unexpected reply to a session load") }
        if case .error(let message) = replies[0] { throw mapError(RedisError(.serverError, message)) }
        guard let fields = replies[0].array, let remaining = replies[1].int else {
            throw SessionError(.corruptSession, "the session hash has an unexpected shape")
        }
        if fields.isEmpty || remaining == -2 { return nil }
        // A hash without `_c` is the fragment a save leaves when it races a destroy: not a session.
        guard var session = try Self.decode(id: id, fields: fields) else { return nil }
        guard remaining > 0 else { throw SessionError(.corruptSession, "a session hash without an expiry") }
        if needsTouch(session, ttl: Int64(remaining)) {
            touch(key)
            session.lastSeenAt = Date()
        } else {
            (loaded, ttl) = (session, Int64(remaining))
        }
        return session
    }

    /// Slides the idle timeout with a detached script nobody waits for: losing it only means an earlier expiry.
    private func touch(_ key: String) {
        let arguments: [any RedisArgumentConvertible] = [
            "EVAL", SessionScripts.touch.source, 1, key, idleMilliseconds, absoluteMilliseconds,
        ]
        client.sendDetached(RedisCommand(arguments: arguments))
    }

    /// Whether a load should slide the idle timeout, judged from server-side values only (the TTL and the stored
    /// timestamps), so instances with skewed clocks agree.
    private func needsTouch(_ session: Session, ttl: Int64) -> Bool {
        let idle = idleMilliseconds
        let created = Int64(session.createdAt.timeIntervalSince1970 * 1000)
        let touched = Int64(session.lastSeenAt.timeIntervalSince1970 * 1000)
        // The last touch already capped the TTL at the absolute lifetime: no touch can extend it any more.
        if created + absoluteMilliseconds - touched <= idle { return false }
        return idle - ttl >= configuration.touchInterval.wholeMilliseconds
    }

    public func save(_ session: inout Session) async throws(SessionError) {
        guard session.hasChanges else { return }
        try await commit(&session, newID: nil)
    }

    public func regenerate(_ session: inout Session) async throws(SessionError) {
        try await commit(&session, newID: SessionID())
    }

    public func destroy(id: SessionID) async throws(SessionError) {
        defer { cache?.invalidate(id) }
        _ = try await run(
            SessionScripts.destroy, keys: [sessionKey(id)], arguments: [configuration.keyPrefix, id.text])
    }

    public func sessions(userID: String) async throws(SessionError) -> [SessionSummary] {
        let reply = try await run(SessionScripts.list, keys: [userKey(userID)], arguments: [configuration.keyPrefix])
        guard let values = reply.array, let now = values.last?.int else {
            throw SessionError(.corruptSession, "the user index has an unexpected shape")
        }
        var summaries: [SessionSummary] = []
        var index = 0
        while index + 4 <= values.count - 1 {
            defer { index += 4 }
            guard let idText = values[index].string, let id = SessionID(idText),
                let created = values[index + 1].int, let touched = values[index + 2].int,
                let ttl = values[index + 3].int
            else { continue }  // a foreign member in the index: skip it rather than fail the whole list
            summaries.append(
                SessionSummary(
                    id: id, createdAt: Self.date(milliseconds: created), lastSeenAt: Self.date(milliseconds: touched),
                    expiresAt: Self.date(milliseconds: now + max(0, ttl))))
        }
        return summaries.sorted { $0.createdAt < $1.createdAt }
    }

    @discardableResult
    public func destroyAll(userID: String) async throws(SessionError) -> Int {
        defer { cache?.invalidate(userID: userID) }
        let reply = try await run(
            SessionScripts.destroyAll, keys: [userKey(userID)], arguments: [configuration.keyPrefix])
        return reply.int ?? 0
    }

    // MARK: Internals

    private func commit(_ session: inout Session, newID: SessionID?) async throws(SessionError) {
        // Dropped whether or not the write succeeded: a failed reply does not prove that nothing changed.
        let original = session.id
        defer { cache?.invalidate(original) }
        // Limits are checked against the session as this request sees it (its loaded copy plus its changes).
        try configuration.checkLimits(count: session.attributes.count, bytes: session.encodedSize)
        if newID == nil && !session.userChanged {
            try await saveAttributes(&session)
        } else {
            try await move(&session, to: newID ?? session.id)
        }
    }

    /// A plain attribute save: one `MULTI`/`EXEC` round trip, no Lua.
    ///
    /// `HEXISTS _c` inside the transaction tells whether the session still existed when the writes ran. If it did
    /// not (destroyed or expired meanwhile), the `HSET` has only left a fragment without `_c`, which no load accepts
    /// as a session; it is deleted at once and the save reports ``SessionError/Code/sessionNotFound``. The expiry is
    /// the idle timeout, capped by `PEXPIREAT ... LT` at the absolute deadline, all in server time.
    private func saveAttributes(_ session: inout Session) async throws(SessionError) {
        let key = sessionKey(session.id)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let created = Int64(session.createdAt.timeIntervalSince1970 * 1000)
        var set: [any RedisArgumentConvertible] = ["HSET", key]
        for changed in session.changedKeys {
            set.append("a:" + changed)
            set.append(session.attributes[changed] ?? [])
        }
        set.append("_t")
        set.append(now)
        var commands = [RedisCommand("HEXISTS", key, "_c"), RedisCommand(arguments: set)]
        if !session.removedKeys.isEmpty {
            commands.append(RedisCommand(arguments: ["HDEL", key] + session.removedKeys.map { "a:" + $0 }))
        }
        commands.append(RedisCommand("HINCRBY", key, "_v", 1))
        commands.append(RedisCommand("PEXPIRE", key, idleMilliseconds))
        commands.append(RedisCommand("PEXPIREAT", key, created + absoluteMilliseconds, "LT"))
        let results: [RedisValue]
        do {
            results = try await client.transaction(commands)
        } catch let error as RedisError {
            throw mapError(error)
        } catch {
            throw SessionError(.storeUnavailable, "\(error)")
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

    /// A save that changes the user or the ID: the `move` script, one round trip.
    private func move(_ session: inout Session, to newID: SessionID) async throws(SessionError) {
        let userAction: String =
            if session.userChanged {
                session.userID.map { "=" + $0 } ?? "-"
            } else {
                ""
            }
        let changed = session.changedKeys.sorted()
        var arguments: [any RedisArgumentConvertible] = [
            configuration.keyPrefix, session.id.text, newID.text, idleMilliseconds, absoluteMilliseconds, userAction,
            changed.count,
        ]
        for key in changed {
            arguments.append("a:" + key)
            arguments.append(session.attributes[key] ?? [])
        }
        for key in session.removedKeys { arguments.append("a:" + key) }
        let reply = try await run(
            SessionScripts.move, keys: [sessionKey(session.id), sessionKey(newID)], arguments: arguments)
        guard let values = reply.array, values.count == 3, let version = values[0].int, let now = values[2].int else {
            throw SessionError(.corruptSession, "the save script answered \(reply)")
        }
        session.id = newID
        session.lastSeenAt = Self.date(milliseconds: now)
        session.markSaved(version: version)
    }

    private func run(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgumentConvertible]
    ) async throws(SessionError) -> RedisValue {
        do {
            return try await client.evaluate(script, keys: keys, arguments: arguments)
        } catch let error as RedisError {
            throw mapError(error)
        } catch {
            throw SessionError(.storeUnavailable, "\(error)")
        }
    }

    private func mapError(_ error: RedisError) -> SessionError {
        guard error.code == .serverError else {
            return SessionError(.storeUnavailable, "the session store is unavailable", underlying: error)
        }
        let words = error.message.split(separator: " ", maxSplits: 1)
        let detail = words.count > 1 ? String(words[1]) : error.message
        switch words.first {
        case "GONE": return SessionError(.sessionNotFound, detail)
        case "CORRUPT": return SessionError(.corruptSession, detail)
        case "WRONGTYPE": return SessionError(.corruptSession, "a key under the session prefix is not a session hash")
        default: return SessionError(.storeUnavailable, "the session store failed", underlying: error)
        }
    }

    /// Decodes `HGETALL` output; `nil` when the hash carries no creation time (not a session).
    ///
    /// Runs on every request, so it works on bytes: metadata names are two bytes, numbers are parsed in place.
    static func decode(id: SessionID, fields: [RedisValue]) throws(SessionError) -> Session? {
        guard fields.count % 2 == 0 else { throw SessionError(.corruptSession, "the session hash has an odd shape") }
        var attributes: [String: [UInt8]] = [:]
        attributes.reserveCapacity(fields.count / 2)
        var created: Int?
        var touched: Int?
        var version = 0
        var user: String?
        var hasCreated = false
        var index = 0
        while index < fields.count {
            defer { index += 2 }
            guard case .bulkString(let name) = fields[index], case .bulkString(let value) = fields[index + 1] else {
                throw SessionError(.corruptSession, "the session hash holds a non-string field")
            }
            if name.count > 2, name[0] == UInt8(ascii: "a"), name[1] == UInt8(ascii: ":") {
                attributes[String(decoding: name[2...], as: UTF8.self)] = value
                continue
            }
            guard name.count == 2, name[0] == UInt8(ascii: "_") else { continue }
            switch name[1] {
            case UInt8(ascii: "c"):
                hasCreated = true
                created = parseInteger(value)
            case UInt8(ascii: "t"): touched = parseInteger(value)
            case UInt8(ascii: "v"): version = parseInteger(value) ?? 0
            case UInt8(ascii: "u"): user = String(decoding: value, as: UTF8.self)
            default: break
            }
        }
        if !hasCreated { return nil }
        guard let created, let touched else {
            throw SessionError(.corruptSession, "the session hash has unreadable metadata")
        }
        return Session(
            id: id, userID: user, createdAt: date(milliseconds: created), lastSeenAt: date(milliseconds: touched),
            version: version, attributes: attributes)
    }

    /// A non-negative decimal integer, or `nil`.
    static func parseInteger(_ bytes: [UInt8]) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static func date(milliseconds: Int) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
}
