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
/// With a cache (``SessionCache/Configuration``), a load of a session this instance loaded recently costs no round
/// trip at all, and every write through the store drops the entries it changes; see ``SessionCache`` for what keeps
/// it exact. The cache follows Redis' reports while ``run()`` runs.
public struct RedisSessionStore: SessionStore {
    /// The Redis pool the store uses.
    public let client: RedisClient
    /// Key prefix, timeouts and limits.
    public let configuration: SessionStoreConfiguration
    /// The instance's session cache, if the store was made with one: for its ``SessionCache/statistics``.
    public let cache: SessionCache?
    /// The encryption keys in use: the configuration's, until ``replaceEncryption(_:)``.
    private let keyring: Keyring

    /// Creates a store on a client.
    ///
    /// - Parameters:
    ///   - client: The pool to send commands on.
    ///   - configuration: Key prefix, timeouts and limits.
    ///   - cache: Keep the sessions this instance loads in memory, exact through Redis' key tracking, within these
    ///     bounds; `nil` (the default) reads Redis on every load. The cache serves nothing until ``run()`` runs.
    ///   - cacheObserver: Called after each report the cache applies; for logs (a lost tracking connection says
    ///     why) and tests.
    public init(
        client: RedisClient, configuration: SessionStoreConfiguration = SessionStoreConfiguration(),
        cache: SessionCache.Configuration? = nil, cacheObserver: (@Sendable (RedisInvalidation) -> Void)? = nil
    ) {
        self.init(
            client: client, configuration: configuration,
            cache: cache.map {
                SessionCache(
                    client: client, keyPrefix: configuration.keyPrefix, configuration: $0, observer: cacheObserver)
            })
    }

    /// Creates a store around a cache made elsewhere (tests give it a ``ManualClock``).
    package init(client: RedisClient, configuration: SessionStoreConfiguration, cache: SessionCache?) {
        precondition(
            cache.map { $0.keyPrefix == configuration.keyPrefix } ?? true,
            "the session cache must follow the store's key prefix")
        self.client = client
        self.configuration = configuration
        self.cache = cache
        self.keys = SessionKeys(prefix: configuration.keyPrefix)
        self.keyring = Keyring(configuration.encryption)
    }

    /// The keys that encrypt values at rest now: ``SessionStoreConfiguration/encryption`` until
    /// ``replaceEncryption(_:)`` replaced them.
    public var encryption: SessionEncryption? { keyring.keys.withLock { $0 } }

    /// Rotates the encryption keys of a running store (an instance that re-reads its key file on `SIGHUP`): reads
    /// and writes from now on use `encryption`. Every instance should get the new list: put the new key first and
    /// keep the old one, then, once ``EncryptionKeyCensus`` counts no value under the old key, drop it.
    public func replaceEncryption(_ encryption: SessionEncryption?) {
        keyring.keys.withLock { $0 = encryption }
    }

    /// The keys, shared by every copy of the store.
    final class Keyring: Sendable {
        let keys: Mutex<SessionEncryption?>
        init(_ keys: SessionEncryption?) { self.keys = Mutex(keys) }
    }

    /// Runs the store's background work until the calling task is cancelled: the session cache following Redis'
    /// reports (a store without a cache just waits). This is the ServiceLifecycle shape: add the store to the
    /// application's service group, or run it in a task beside the server.
    ///
    /// - Important: Call it at most once per store.
    public func run() async {
        if let cache {
            await cache.run()
        } else {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        }
    }

    /// The session, if this instance's cache holds it: no round trip, and no suspension, for callers that want to
    /// answer without leaving their thread (an event loop). `nil` means "not in memory", not "no session": call
    /// ``load(id:)`` then (which counts the cache's miss; this probe counts only hits). It slides the idle timeout
    /// as ``load(id:)`` does.
    public func loadFromMemory(id: SessionID) -> Session? {
        fromMemory(id, countingMiss: false)
    }

    private func fromMemory(_ id: SessionID, countingMiss: Bool) -> Session? {
        guard let cache, let (cached, ttl) = cache.session(id, countingMiss: countingMiss) else { return nil }
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
        /// Loads that slid the idle timeout (at most one per session per ``SessionStoreConfiguration/touchInterval``):
        /// writes too, each reported to the instances caching the session.
        public var touches: Int
    }

    /// Counters, readable at any time.
    public var statistics: Statistics {
        Statistics(
            // The cache's hits: counted per CPU where they happen, not on one shared line per request.
            loadsFromMemory: cache?.statistics.hits ?? 0,
            loadsFromRedis: counters.loadsFromRedis.load(ordering: .relaxed),
            saves: counters.saves.load(ordering: .relaxed),
            touches: counters.touches.load(ordering: .relaxed))
    }

    final class Counters: Sendable {
        let loadsFromRedis = Atomic<Int>(0)
        let saves = Atomic<Int>(0)
        let touches = Atomic<Int>(0)
    }

    let counters = Counters()
    /// Built once: every load names its key through it.
    let keys: SessionKeys
    /// Whether writes that end sessions have a replica to wait for.
    let replicas = ReplicaCount()
    var idleMilliseconds: Int64 { configuration.idleTimeout.wholeMilliseconds }
    var absoluteMilliseconds: Int64 { configuration.absoluteLifetime.wholeMilliseconds }

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

    public func load(id: SessionID) async throws(SessionError) -> Session? {
        if let session = fromMemory(id, countingMiss: true) { return session }
        return try await loadFromRedis(id: id)
    }

    /// Loads the session from Redis (one round trip) and gives the cache what it read.
    private func loadFromRedis(id: SessionID) async throws(SessionError) -> Session? {
        let ticket = cache?.beginLoad(id)
        var loaded: Session?
        var ttl: Int64 = 0
        var trackingRefused = false
        defer {
            if let ticket { cache?.finishLoad(ticket, with: trackingRefused ? nil : loaded, ttlMilliseconds: ttl) }
        }
        let key = keys.session(id)
        var commands = [RedisCommand(strings: ["HGETALL", key]), RedisCommand(strings: ["PTTL", key])]
        // Holders mode: only a read the cache will keep is tracked, and it must be, or its changes go unreported.
        let tracked = ticket != nil && cache?.tracksReads == true
        if tracked { commands.insert(Self.trackNextRead, at: 0) }
        var replies = try await pipeline(commands)
        counters.loadsFromRedis.add(1, ordering: .relaxed)
        if tracked, !replies.isEmpty {
            // Refused (the connection's tracking is being re-pointed after a gap): served, but never cached.
            if replies.removeFirst() != .simpleString("OK") { trackingRefused = true }
        }
        guard replies.count == 2 else { throw SessionError(.corruptSession, "unexpected reply to a session load") }
        if case .error(let message) = replies[0] { throw mapError(RedisError(.serverError, message)) }
        guard let fields = replies[0].array, let remaining = replies[1].int else {
            throw SessionError(.corruptSession, "the session hash has an unexpected shape")
        }
        if fields.isEmpty || remaining == -2 { return nil }
        // A hash without `_c` is the fragment a save leaves when it races a destroy: not a session.
        guard var session = try SessionRecord.decode(id: id, fields: fields, encryption: encryption)
        else { return nil }
        guard remaining > 0 else { throw SessionError(.corruptSession, "a session hash without an expiry") }
        if needsTouch(session, ttl: Int64(remaining)) {
            touch(key)
            session.lastSeenAt = Date()
        } else {
            (loaded, ttl) = (session, Int64(remaining))
        }
        return session
    }

    /// Asks Redis to track the next command's keys for this connection (holders mode, `OPTIN`).
    private static let trackNextRead = RedisCommand("CLIENT", "CACHING", "YES")

    /// Slides the idle timeout with a detached script nobody waits for: losing it only means an earlier expiry.
    private func touch(_ key: String) {
        let arguments: [any RedisArgumentConvertible] = [
            "EVAL", SessionScripts.touch.source, 1, key, idleMilliseconds, absoluteMilliseconds,
        ]
        counters.touches.add(1, ordering: .relaxed)
        client.sendDetached(RedisCommand(arguments: arguments))
    }

    /// Whether a load should slide the idle timeout, judged from server-side values only (the TTL and the stored
    /// timestamps), so instances with skewed clocks agree.
    private func needsTouch(_ session: Session, ttl: Int64) -> Bool {
        let idle = idleMilliseconds
        let created = SessionRecord.milliseconds(session.createdAt)
        let touched = SessionRecord.milliseconds(session.lastSeenAt)
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
        guard let user = reply.last?.string, SessionID.tag(forUser: user) == id.tag else { return }
        do {
            _ = try await client.send("ZREM", keys.userIndex(user), id.handle.text)
        } catch {
            // The session is gone; its index entry is pruned by the next list or destroy-all of the user.
        }
    }

    @discardableResult
    public func destroy(handle: SessionHandle, userID: String) async throws(SessionError) -> Bool {
        defer { cache?.invalidate(storageName: SessionKeys.storageName(handle, userID: userID)) }
        let reply = try await run(
            SessionScripts.destroy, keys: [keys.session(handle, userID: userID), keys.userIndex(userID)],
            arguments: [userID, handle.text], durable: true)
        return reply.first?.int == 1
    }

    public func sessions(userID: String) async throws(SessionError) -> [SessionSummary] {
        let index = keys.userIndex(userID)
        let values = try await run(SessionScripts.listIndex, keys: [index], arguments: [])
        guard let now = values.first?.int else {
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
                let stored = try? SessionRecord.Fields(
                    fields, encryption: encryption,
                    storageName: SessionKeys.storageName(handle, userID: userID), labelsOnly: true),
                let created = stored.created,
                let ttl = replies[reply + 1].int,
                ttl > 0
            else {
                dead.append(member)
                continue
            }
            summaries.append(
                SessionSummary(
                    handle: handle, labels: stored.labels, createdAt: SessionRecord.date(milliseconds: created),
                    lastSeenAt: SessionRecord.date(milliseconds: stored.touched ?? created),
                    expiresAt: SessionRecord.date(milliseconds: now + ttl)))
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
        // Every key the script deletes is declared, so it must read the index first; if a login adds a session
        // between the two, the script changes nothing and the index is read again.
        for _ in 0..<Self.destroyAllAttempts {
            let members =
                try await pipeline([RedisCommand(strings: ["ZRANGE", index, "0", "-1"])]).first?.array?
                .compactMap(\.string) ?? []
            let sessionKeys = members.map { keys.session(indexMember: $0, userID: userID) }
            let outcome = try await runForOutcome(
                SessionScripts.destroyAll, keys: [index] + sessionKeys,
                arguments: members.map { $0 as any RedisArgumentConvertible }, durable: true)
            guard case .done(let values) = outcome else { continue }
            guard let live = values.first?.int else {
                throw SessionError(.corruptSession, "destroy-all answered \(values)")
            }
            return live
        }
        throw SessionError(.storeUnavailable, "the user's sessions kept changing during log out everywhere")
    }

    /// How often ``destroyAll(userID:)`` reads the index again when logins keep changing it.
    static let destroyAllAttempts = 16
}
