import Foundation
public import RedisClient

/// Sessions in Redis: one hash per session, a per-user index, Lua scripts where atomicity needs them.
///
/// | operation | Redis commands | round trips |
/// | --- | --- | --- |
/// | ``load(id:)`` | `EVALSHA` (HGETALL, + HSET/PEXPIRE when the touch interval has passed) | 1 |
/// | ``save(_:)`` | `EVALSHA` (HSET/HDEL of the changed attributes, metadata, PEXPIRE) | 1 |
/// | ``create(userID:attributes:)`` | `EVALSHA` (HSET, PEXPIRE, index ZADD) | 1 |
/// | ``regenerate(_:)`` | `EVALSHA` (the save script with a RENAME) | 1 |
/// | ``destroy(id:)``, ``sessions(userID:)``, ``destroyAll(userID:)`` | `EVALSHA` | 1 |
///
/// A script unknown to the server (after a restart) is sent once with `EVAL`, transparently.
public struct RedisSessionStore: SessionStore {
    /// The Redis pool the store uses.
    public let client: RedisClient
    /// Key prefix, timeouts and limits.
    public let configuration: SessionStoreConfiguration

    /// Creates a store on a client.
    ///
    /// - Parameters:
    ///   - client: The pool to send commands on.
    ///   - configuration: Key prefix, timeouts and limits.
    public init(client: RedisClient, configuration: SessionStoreConfiguration = SessionStoreConfiguration()) {
        self.client = client
        self.configuration = configuration
    }

    private func sessionKey(_ id: SessionID) -> String { configuration.keyPrefix + "s:" + id.text }
    private func userKey(_ userID: String) -> String { configuration.keyPrefix + "u:" + userID }
    private var idleMilliseconds: Int64 { configuration.idleTimeout.wholeMilliseconds }
    private var absoluteMilliseconds: Int64 { configuration.absoluteLifetime.wholeMilliseconds }

    public func create(userID: String?, attributes: [String: String]) async throws(SessionError) -> Session {
        var session = Session(
            id: SessionID(), userID: userID, createdAt: Date(), lastSeenAt: Date(), version: 1, attributes: [:])
        for (key, value) in attributes { session[key] = value }
        try checkLimits(count: session.attributes.count, bytes: session.encodedSize)
        var arguments: [any RedisArgumentConvertible] = [
            configuration.keyPrefix, session.id.text, idleMilliseconds, absoluteMilliseconds,
            userID.map { "=" + $0 } ?? "", session.attributes.count, session.encodedSize,
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
        let reply = try await run(
            SessionScripts.load, keys: [sessionKey(id)],
            arguments: [idleMilliseconds, absoluteMilliseconds, configuration.touchInterval.wholeMilliseconds])
        if reply.isNull { return nil }
        guard let fields = reply.array, fields.count % 2 == 0 else {
            throw SessionError(.corruptSession, "the session hash has an unexpected shape")
        }
        return try Self.decode(id: id, fields: fields)
    }

    public func save(_ session: inout Session) async throws(SessionError) {
        guard session.hasChanges else { return }
        try await commit(&session, newID: nil)
    }

    public func regenerate(_ session: inout Session) async throws(SessionError) {
        try await commit(&session, newID: SessionID())
    }

    public func destroy(id: SessionID) async throws(SessionError) {
        _ = try await run(SessionScripts.destroy, keys: [sessionKey(id)], arguments: [configuration.keyPrefix, id.text])
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
        let reply = try await run(SessionScripts.destroyAll, keys: [userKey(userID)], arguments: [configuration.keyPrefix])
        return reply.int ?? 0
    }

    // MARK: Internals

    private func commit(_ session: inout Session, newID: SessionID?) async throws(SessionError) {
        let userAction: String =
            if session.userChanged {
                session.userID.map { "=" + $0 } ?? "-"
            } else {
                ""
            }
        let changed = session.changedKeys.sorted()
        let removed = session.removedKeys.sorted()
        var arguments: [any RedisArgumentConvertible] = [
            configuration.keyPrefix, session.id.text, (newID ?? session.id).text, idleMilliseconds,
            absoluteMilliseconds, configuration.maximumAttributeCount, configuration.maximumEncodedSize, userAction,
            changed.count,
        ]
        for key in changed {
            arguments.append("a:" + key)
            arguments.append(session.attributes[key] ?? [])
        }
        for key in removed { arguments.append("a:" + key) }
        let keys = [sessionKey(session.id), sessionKey(newID ?? session.id)]
        let reply = try await run(SessionScripts.save, keys: keys, arguments: arguments)
        guard let values = reply.array, values.count == 3, let version = values[0].int, let now = values[2].int else {
            throw SessionError(.corruptSession, "the save script answered \(reply)")
        }
        if let newID { session.id = newID }
        session.lastSeenAt = Self.date(milliseconds: now)
        session.markSaved(version: version)
    }

    private func checkLimits(count: Int, bytes: Int) throws(SessionError) {
        if count > configuration.maximumAttributeCount {
            throw SessionError(
                .tooManyAttributes,
                "the session would hold \(count) attributes; the limit is \(configuration.maximumAttributeCount)")
        }
        if bytes > configuration.maximumEncodedSize {
            throw SessionError(
                .tooLarge, "the session would take \(bytes) bytes; the limit is \(configuration.maximumEncodedSize)")
        }
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
        case "TOOMANY":
            return SessionError(
                .tooManyAttributes,
                "the session would hold \(detail) attributes; the limit is \(configuration.maximumAttributeCount)")
        case "TOOLARGE":
            return SessionError(
                .tooLarge, "the session would take \(detail) bytes; the limit is \(configuration.maximumEncodedSize)")
        case "WRONGTYPE": return SessionError(.corruptSession, "a key under the session prefix is not a session hash")
        default: return SessionError(.storeUnavailable, "the session store failed", underlying: error)
        }
    }

    static func decode(id: SessionID, fields: [RedisValue]) throws(SessionError) -> Session {
        var attributes: [String: [UInt8]] = [:]
        var created: Int?
        var touched: Int?
        var version = 0
        var user: String?
        var index = 0
        while index < fields.count {
            defer { index += 2 }
            guard let name = fields[index].bytes, let value = fields[index + 1].bytes else {
                throw SessionError(.corruptSession, "the session hash holds a non-string field")
            }
            if name.starts(with: [UInt8(ascii: "a"), UInt8(ascii: ":")]) {
                attributes[String(decoding: name.dropFirst(2), as: UTF8.self)] = value
                continue
            }
            switch String(decoding: name, as: UTF8.self) {
            case "_c": created = Int(String(decoding: value, as: UTF8.self))
            case "_t": touched = Int(String(decoding: value, as: UTF8.self))
            case "_v": version = Int(String(decoding: value, as: UTF8.self)) ?? 0
            case "_u": user = String(decoding: value, as: UTF8.self)
            default: break
            }
        }
        guard let created, let touched else {
            throw SessionError(.corruptSession, "the session hash lacks its metadata")
        }
        return Session(
            id: id, userID: user, createdAt: date(milliseconds: created), lastSeenAt: date(milliseconds: touched),
            version: version, attributes: attributes)
    }

    static func date(milliseconds: Int) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
}
