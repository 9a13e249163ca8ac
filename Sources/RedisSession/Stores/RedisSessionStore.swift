import Foundation
public import RedisClient
import Synchronization

/// Sessions in Redis: one hash per session, a per-user index, Lua scripts where atomicity needs them. Keys follow
/// ``SessionKeys``: no key or index member holds a session ID, and each command touches one hash slot.
///
/// | operation | Redis commands | round trips |
/// | --- | --- | --- |
/// | ``load(id:)`` | `HGETALL` + `PTTL`, pipelined; once per touch interval also a detached `EVAL` (HSET, PEXPIRE) that nobody waits for | 1 |
/// | ``save(_:)`` | `MULTI`, `HEXISTS`, `HSET` (changed attributes + last seen), `HDEL` (if removals), `HINCRBY`, `PEXPIRE`, `PEXPIREAT LT`, `EXEC` | 1 |
/// | ``create(userID:attributes:labels:)`` | `EVALSHA` (HSET, PEXPIRE, index ZADD) | 1 |
/// | ``regenerate(_:)`` | `EVALSHA` (the `move` script: writes, `RENAME` inside the slot, index) | 1 |
/// | a save or regenerate that changes the user | `EVALSHA` `take` (read and delete), then `EVALSHA` `create` in the new user's slot | 2 |
/// | ``destroy(id:)`` | `EVALSHA`, then `ZREM` from the user's index for a signed-in session | 1-2 |
/// | ``destroy(handle:userID:)`` | `EVALSHA` | 1 |
/// | ``sessions(userID:)`` | `EVALSHA` (prune, list the index), then `HGETALL` + `PTTL` per session, pipelined | 2 |
/// | ``destroyAll(userID:)`` | `ZRANGE`, then `EVALSHA` with every session declared (read again if the index changed) | 2 |
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
        self.keys = SessionKeys(prefix: configuration.keyPrefix)
    }

    /// The session, if this instance's ``SessionCache`` holds it: no round trip, and no suspension, for callers that
    /// want to answer without leaving their thread (an event loop). `nil` means "not in memory", not "no session":
    /// call ``load(id:)`` then. It slides the idle timeout as ``load(id:)`` does.
    public func loadFromMemory(id: SessionID) -> Session? {
        guard let cache, let (cached, ttl) = cache.session(id) else { return nil }
        var session = cached
        if needsTouch(session, ttl: ttl) {
            // The touch changes the stored session; the next load reads what it wrote.
            cache.invalidate(id)
            touch(keys.session(id))
            session.lastSeenAt = Date()
        }
        return session
    }

    /// What the store did, counted since it was created: for `/stats` and metrics.
    public struct Statistics: Sendable, Hashable {
        /// Loads answered by the session cache, with no round trip.
        public var loadsFromMemory: Int
        /// Loads that read Redis (found or not).
        public var loadsFromRedis: Int
        /// Writes of a session: saves that had changes, regenerations and changes of user.
        public var saves: Int
    }

    /// Counters, readable at any time.
    public var statistics: Statistics {
        Statistics(
            // The cache's hits: counted per CPU where they happen, not on one shared line per request.
            loadsFromMemory: cache?.statistics.hits ?? 0,
            loadsFromRedis: counters.loadsFromRedis.load(ordering: .relaxed),
            saves: counters.saves.load(ordering: .relaxed))
    }

    private final class Counters: Sendable {
        let loadsFromRedis = Atomic<Int>(0)
        let saves = Atomic<Int>(0)
    }

    private let counters = Counters()
    /// Built once: every load names its key through it.
    private let keys: SessionKeys
    /// Whether writes that end sessions have a replica to wait for.
    private let replicas = ReplicaCount()
    private var idleMilliseconds: Int64 { configuration.idleTimeout.wholeMilliseconds }
    private var absoluteMilliseconds: Int64 { configuration.absoluteLifetime.wholeMilliseconds }

    public func create(
        userID: String?, attributes: [String: String], labels: [String: String]
    ) async throws(SessionError) -> Session {
        var session = Session(
            id: userID.map(SessionID.init(userID:)) ?? SessionID(), userID: userID, createdAt: Date(),
            lastSeenAt: Date(), version: 1, attributes: [:], labels: labels)
        for (key, value) in attributes { session[key] = value }
        session.labelsChanged = true
        try configuration.checkLimits(count: session.attributes.count, bytes: session.encodedSize)
        try await insert(&session, created: nil, version: nil)
        return session
    }

    /// Runs the `create` script for `session` (new, or taken from another user), and marks it saved.
    private func insert(
        _ session: inout Session, created: Int?, version: Int?, durable: Bool = false
    ) async throws(SessionError) {
        var arguments: [any RedisArgumentConvertible] = [
            idleMilliseconds, absoluteMilliseconds, session.userID ?? "", session.id.handle.text,
            created.map(String.init) ?? "", version.map(String.init) ?? "",
        ]
        for (field, value) in session.changedFields {
            arguments.append(field)
            arguments.append(value)
        }
        var scriptKeys = [keys.session(session.id)]
        if let userID = session.userID { scriptKeys.append(keys.userIndex(userID)) }
        let reply = try await run(SessionScripts.create, keys: scriptKeys, arguments: arguments, durable: durable)
        guard let values = reply.array, values.count == 2, let createdAt = values[0].int, let now = values[1].int
        else {
            throw SessionError(.corruptSession, "the create script answered \(reply)")
        }
        session.createdAt = Self.date(milliseconds: createdAt)
        session.lastSeenAt = Self.date(milliseconds: now)
        session.markSaved(version: version ?? 1)
    }

    public func load(id: SessionID) async throws(SessionError) -> Session? {
        if let session = loadFromMemory(id: id) { return session }
        return try await loadFromStore(id: id)
    }

    /// Loads the session from Redis (one round trip) without asking the ``SessionCache`` first, and gives the cache
    /// what it read: for a caller whose ``loadFromMemory(id:)`` just found nothing, so the miss counts once.
    public func loadFromStore(id: SessionID) async throws(SessionError) -> Session? {
        let ticket = cache?.beginLoad(id)
        var loaded: Session?
        var ttl: Int64 = 0
        defer { if let ticket { cache?.finishLoad(ticket, with: loaded, ttlMilliseconds: ttl) } }
        let key = keys.session(id)
        let replies = try await pipeline([
            RedisCommand(strings: ["HGETALL", key]), RedisCommand(strings: ["PTTL", key]),
        ])
        counters.loadsFromRedis.add(1, ordering: .relaxed)
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
        try await commit(&session, regenerating: false)
    }

    public func regenerate(_ session: inout Session) async throws(SessionError) {
        try await commit(&session, regenerating: true)
    }

    public func destroy(id: SessionID) async throws(SessionError) {
        defer { cache?.invalidate(id) }
        let reply = try await run(
            SessionScripts.destroy, keys: [keys.session(id)], arguments: ["", id.handle.text], durable: true)
        // The script cannot know the user's index before it reads the session: a second command, in the same slot.
        guard let user = reply.array?.last?.string, SessionID.tag(forUser: user) == id.tag else { return }
        do {
            _ = try await client.send("ZREM", keys.userIndex(user), id.handle.text)
        } catch {
            // The session is gone; its index entry is pruned by the next list or destroy-all of the user.
        }
    }

    @discardableResult
    public func destroy(handle: SessionHandle, userID: String) async throws(SessionError) -> Bool {
        let storageName = "{" + SessionID.tag(forUser: userID) + "}" + handle.text
        let key = keys.sessionPrefix + storageName
        defer { cache?.invalidate(storageName: storageName) }
        let reply = try await run(
            SessionScripts.destroy, keys: [key, keys.userIndex(userID)], arguments: [userID, handle.text], durable: true
        )
        return reply.array?.first?.int == 1
    }

    public func sessions(userID: String) async throws(SessionError) -> [SessionSummary] {
        let index = keys.userIndex(userID)
        let listed = try await run(SessionScripts.listIndex, keys: [index], arguments: [])
        guard let values = listed.array, let now = values.first?.int else {
            throw SessionError(.corruptSession, "the user index has an unexpected shape")
        }
        let members = values.dropFirst().compactMap(\.string)
        if members.isEmpty { return [] }
        let handles = members.map { SessionHandle($0) }
        var commands: [RedisCommand] = []
        for handle in handles {
            guard let handle else { continue }
            let key = keys.session(handle, userID: userID)
            commands += [RedisCommand(strings: ["HGETALL", key]), RedisCommand(strings: ["PTTL", key])]
        }
        let replies = try await pipeline(commands)
        var summaries: [SessionSummary] = []
        var dead: [String] = []
        var reply = 0
        for (member, handle) in zip(members, handles) {
            guard let handle else {
                dead.append(member)  // not a digest this store wrote: nothing can load it
                continue
            }
            defer { reply += 2 }
            guard reply + 1 < replies.count, let fields = replies[reply].array,
                let stored = try? StoredFields(fields), let created = stored.created, let ttl = replies[reply + 1].int,
                ttl > 0
            else {
                dead.append(member)
                continue
            }
            summaries.append(
                SessionSummary(
                    handle: handle, labels: stored.labels, createdAt: Self.date(milliseconds: created),
                    lastSeenAt: Self.date(milliseconds: stored.touched ?? created),
                    expiresAt: Self.date(milliseconds: now + ttl)))
        }
        if !dead.isEmpty {
            // Sessions that expired while idle: the index forgets them now (a failure only defers that).
            _ = try? await client.send(RedisCommand(strings: ["ZREM", index] + dead))
        }
        return summaries.sorted { ($0.createdAt, $0.handle.text) < ($1.createdAt, $1.handle.text) }
    }

    @discardableResult
    public func destroyAll(userID: String) async throws(SessionError) -> Int {
        defer { cache?.invalidate(userID: userID) }
        let index = keys.userIndex(userID)
        let tag = SessionID.tag(forUser: userID)
        // Every key the script deletes is declared, so it must read the index first; if a login adds a session
        // between the two, the script changes nothing and the index is read again.
        for _ in 0..<Self.destroyAllAttempts {
            let members =
                try await pipeline([RedisCommand(strings: ["ZRANGE", index, "0", "-1"])]).first?.array?
                .compactMap(\.string) ?? []
            let sessionKeys = members.map { keys.sessionPrefix + "{" + tag + "}" + $0 }
            let reply = try await run(
                SessionScripts.destroyAll, keys: [index] + sessionKeys,
                arguments: members.map { $0 as any RedisArgumentConvertible }, durable: true)
            guard let live = reply.int else { throw SessionError(.corruptSession, "destroy-all answered \(reply)") }
            if live >= 0 { return live }
        }
        throw SessionError(.storeUnavailable, "the user's sessions kept changing during log out everywhere")
    }

    /// How often ``destroyAll(userID:)`` reads the index again when logins keep changing it.
    static let destroyAllAttempts = 16

    // MARK: Internals

    private func commit(_ session: inout Session, regenerating: Bool) async throws(SessionError) {
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
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let created = Int64(session.createdAt.timeIntervalSince1970 * 1000)
        var set: [any RedisArgumentConvertible] = ["HSET", key]
        for (field, value) in session.changedFields {
            set.append(field)
            set.append(value)
        }
        set.append("_t")
        set.append(now)
        var commands = [RedisCommand("HEXISTS", key, "_c"), RedisCommand(arguments: set)]
        let removed = session.removedFields
        if !removed.isEmpty { commands.append(RedisCommand(strings: ["HDEL", key] + removed)) }
        commands.append(RedisCommand("HINCRBY", key, "_v", 1))
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
        let changed = session.changedFields
        var arguments: [any RedisArgumentConvertible] = [
            idleMilliseconds, absoluteMilliseconds, session.id.handle.text, newID.handle.text, changed.count,
        ]
        for (field, value) in changed {
            arguments.append(field)
            arguments.append(value)
        }
        for field in session.removedFields { arguments.append(field) }
        var scriptKeys = [keys.session(session.id), keys.session(newID)]
        if let userID = session.storedUserID { scriptKeys.append(keys.userIndex(userID)) }
        let reply = try await run(SessionScripts.move, keys: scriptKeys, arguments: arguments, durable: true)
        guard let values = reply.array, values.count == 3, let version = values[0].int, let now = values[2].int else {
            throw SessionError(.corruptSession, "the save script answered \(reply)")
        }
        session.id = newID
        session.lastSeenAt = Self.date(milliseconds: now)
        session.markSaved(version: version)
    }

    /// A change of user moves the session to the new user's slot, so it cannot be one script: `take` reads and
    /// deletes the session (a save racing it finds nothing), then `create` writes it under a new ID in the new slot,
    /// carrying its creation time so the absolute lifetime carries over. If the second step fails the session is
    /// gone and the caller gets the error (a 503): never two live IDs.
    private func changeUser(_ session: inout Session) async throws(SessionError) {
        var takeKeys = [keys.session(session.id)]
        if let previous = session.storedUserID { takeKeys.append(keys.userIndex(previous)) }
        let reply = try await run(SessionScripts.take, keys: takeKeys, arguments: [session.id.handle.text])
        guard let fields = reply.array else { throw SessionError(.corruptSession, "the take script answered \(reply)") }
        let stored = try StoredFields(fields)
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

    private func pipeline(_ commands: [RedisCommand]) async throws(SessionError) -> [RedisValue] {
        do {
            return try await client.pipeline(commands)
        } catch {
            throw mapError(error)
        }
    }

    /// Runs a script; a `durable` one (a write that ends a session) also waits for the configured replicas.
    private func run(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgumentConvertible], durable: Bool = false
    ) async throws(SessionError) -> RedisValue {
        let acknowledgement = durable ? configuration.replicaAcknowledgement : nil
        let acknowledged: Int
        do {
            guard let acknowledgement, try await replicas.current(on: client) > 0 else {
                return try await client.evaluate(script, keys: keys, arguments: arguments)
            }
            let reply: RedisValue
            (reply, acknowledged) = try await client.evaluate(
                script, keys: keys, arguments: arguments, waitingFor: acknowledgement.replicas,
                timeout: acknowledgement.timeout)
            // Fine if the replicas just went away (nothing to wait for); a failure if they lag.
            guard acknowledged < acknowledgement.replicas, try await replicas.refresh(on: client) > 0 else {
                return reply
            }
        } catch {
            throw mapError(error)
        }
        let wanted = acknowledgement?.replicas ?? 0
        let timeout = acknowledgement?.timeout ?? .zero
        throw SessionError(
            .storeUnavailable,
            "\(acknowledged) of \(wanted) replicas confirmed within \(timeout); a failover now could undo this write")
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
    static func decode(id: SessionID, fields: [RedisValue]) throws(SessionError) -> Session? {
        let stored = try StoredFields(fields)
        guard stored.hasCreated else { return nil }
        guard let created = stored.created, let touched = stored.touched else {
            throw SessionError(.corruptSession, "the session hash has unreadable metadata")
        }
        return Session(
            id: id, userID: stored.user, createdAt: date(milliseconds: created),
            lastSeenAt: date(milliseconds: touched),
            version: stored.version, attributes: stored.attributes, labels: stored.labels)
    }

    /// A session hash as `HGETALL` returns it.
    ///
    /// Runs on every load, so it works on bytes: metadata names are two bytes, numbers are parsed in place.
    struct StoredFields {
        var attributes: [String: [UInt8]] = [:]
        var labels: [String: String] = [:]
        var created: Int?
        var touched: Int?
        var version = 0
        var user: String?
        var hasCreated = false

        init(_ fields: [RedisValue]) throws(SessionError) {
            guard fields.count % 2 == 0 else {
                throw SessionError(.corruptSession, "the session hash has an odd shape")
            }
            attributes.reserveCapacity(fields.count / 2)
            var index = 0
            while index < fields.count {
                defer { index += 2 }
                guard case .bulkString(let name) = fields[index], case .bulkString(let value) = fields[index + 1]
                else {
                    throw SessionError(.corruptSession, "the session hash holds a non-string field")
                }
                if name.count > 2, name[1] == UInt8(ascii: ":") {
                    if name[0] == UInt8(ascii: "a") {
                        attributes[String(decoding: name[2...], as: UTF8.self)] = value
                    } else if name[0] == UInt8(ascii: "l") {
                        labels[String(decoding: name[2...], as: UTF8.self)] = String(decoding: value, as: UTF8.self)
                    }
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
        }
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
