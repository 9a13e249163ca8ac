@_spi(Internals) public import RedisClient
import Synchronization

/// Each instance's copy of the sessions it loaded recently, kept exact by Redis itself: a ``RedisSessionStore``
/// made with a ``Configuration`` owns one, and answers a repeated ``RedisSessionStore/load(id:)`` from memory, with
/// no round trip. The store makes it on its own key prefix and runs it in ``RedisSessionStore/run()``.
///
/// Exactness comes from Redis' server-assisted client-side caching: Redis reports every write, delete and expiry of a
/// cached session, by any instance or any tool, in the same event-loop turn that runs it, to a dedicated connection
/// of this instance (the tracker). The entry is dropped when the report arrives, and the next load reads Redis again.
/// ``Configuration/tracking`` chooses which writes are reported:
/// - ``SessionTracking/holders`` (the default): Redis remembers which instance read which session. The store's pool
///   connections redirect their tracking to the tracker (`CLIENT TRACKING ON REDIRECT <tracker> OPTIN`), and each
///   read the cache will keep is preceded by `CLIENT CACHING YES`. A write is reported only to the instances that
///   hold the session: with session affinity at the load balancer, one. One holders-mode cache per `RedisClient`:
///   a second on the same client serves nothing and says why through the observer.
/// - ``SessionTracking/broadcast``: every session write is reported to every instance
///   (`CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX <prefix>s:`).
///
/// The rules that keep a stale session from being served:
/// - Nothing is served or stored unless tracking is confirmed on a live connection. From a lost connection until
///   tracking is back the cache is empty and every load reads Redis (and fails with
///   ``SessionErrorCode/storeUnavailable`` while Redis is down, as without a cache).
/// - In holders mode, two more losses are silent under RESP2 and handled: a tracker that reconnects has a new client
///   ID, so every pool connection re-points before its next batch (idle ones at once); and a pool connection that
///   tracked reads and is lost takes Redis' memory of those reads with it, so the cache drops everything.
/// - A load marks its key before it sends the read; a report for that key in between cancels the mark, and the
///   result is then returned but not stored. So a reply that raced a change never fills the cache.
/// - This instance's own writes (save, regenerate, destroy, destroy-all) drop their entries before they return,
///   so the instance reads its own writes without waiting for the report.
/// - An entry is never served past the session's expiry as read from Redis, nor older than
///   ``CacheBounds/maximumAge``.
///
/// The one window left is the report's travel time: a request that another instance serves while the report of a
/// destroy is on its way still sees the session, as a request already past its session read would without a
/// cache. `session-bench events` measures that travel for the settings events that share the path.
///
/// The store's ``RedisSessionStore/run()`` follows the invalidations until its task is cancelled; ``statistics``
/// says what the cache did.
public final class SessionCache: Sendable {
    /// Size and staleness bounds.
    public struct Configuration: CacheConfiguration {
        /// How many sessions, and how old an entry may be served even if Redis reported no change.
        public var bounds: CacheBounds
        /// Sessions whose attributes take more bytes than this are not cached, which bounds the memory the cache
        /// may take to about `capacity` times this. Default 4 KiB.
        public var largestCachedSession: Int
        /// The `CLIENT SETNAME` of the tracking connection, so operators can find it; `nil` names it after the
        /// pool's client name with `-cache` appended.
        public var subscriberName: String?
        /// Which changes Redis reports to this instance. Default ``SessionTracking/holders``.
        public var tracking: SessionTracking

        /// Creates a configuration; every argument has a default (10,000 sessions, 60 s, 4 KiB, holders).
        public init(
            capacity: Int = 10_000, maximumAge: Duration = .seconds(60), largestCachedSession: Int = 4096,
            subscriberName: String? = nil, tracking: SessionTracking = .holders
        ) {
            precondition(largestCachedSession >= 0, "largestCachedSession cannot be negative")
            self.bounds = CacheBounds(capacity: capacity, maximumAge: maximumAge)
            self.largestCachedSession = largestCachedSession
            self.subscriberName = subscriberName
            self.tracking = tracking
        }
    }

    /// Counters, readable at any time (for `/stats`); `hits`, `misses`, `count` and `resyncs` come from
    /// ``counts``.
    public struct Statistics: CacheStatistics {
        /// Loads answered from memory or not, entries held (loads in flight included), and restarts after a gap in
        /// tracking.
        public var counts: CacheCounts
        /// Changes to sessions Redis reported, cached here or not (this instance's own writes included: each
        /// comes back as a report, which costs the next load of that session one read).
        public var invalidations: Int
        /// Whether tracking is on and the cache is serving from memory.
        public var isTracking: Bool
    }

    /// What a cache slot holds: a load in flight, or a loaded session.
    private enum Entry: Sendable {
        case loading(token: UInt64)
        case loaded(Session, ttlMilliseconds: Int64, loadedAt: UInt64)
    }

    /// The key prefix of the sessions' store; the cache follows `<keyPrefix>s:`.
    public let keyPrefix: String
    /// Size and staleness bounds.
    public let configuration: Configuration
    /// The connection that receives the invalidations.
    public let subscriber: RedisSubscriber

    private let sessionKeyPrefix: [UInt8]
    private let core: CacheCore<Entry>
    private let invalidations = Atomic<Int>(0)
    private let resyncCount = Atomic<Int>(0)
    private let observer: (@Sendable (RedisInvalidation) -> Void)?
    /// The store's pool, whose connections the holders mode tracks reads on.
    private let client: RedisClient

    /// Creates a cache; it serves nothing until ``run()`` has tracking on. The store makes it.
    ///
    /// - Parameters:
    ///   - client: The pool whose configuration opens the tracking connection (the store's own pool).
    ///   - keyPrefix: The store's key prefix (``SessionStoreConfiguration/keyPrefix``).
    ///   - configuration: Size and staleness bounds, and the tracking connection's name.
    ///   - clock: The time for ages (tests move a ``ManualClock``).
    ///   - observer: Called after each report is applied; for logs (a lost tracking connection says why, for
    ///     example a Redis older than 6 that refuses `CLIENT TRACKING`) and tests.
    package init(
        client: RedisClient, keyPrefix: String, configuration: Configuration = Configuration(),
        clock: MonotonicClock = .coarse, observer: (@Sendable (RedisInvalidation) -> Void)? = nil
    ) {
        self.observer = observer
        self.client = client
        self.keyPrefix = keyPrefix
        self.configuration = configuration
        var redis = client.configuration
        redis.clientName = configuration.subscriberName ?? redis.clientName.map { $0 + "-cache" }
        self.subscriber = RedisSubscriber(configuration: redis)
        self.sessionKeyPrefix = Array(SessionKeys(prefix: keyPrefix).sessionPrefix.utf8)
        self.core = CacheCore(bounds: configuration.bounds, clock: clock)
    }

    /// Turns tracking on and applies Redis' reports until the calling task is cancelled; then the cache empties
    /// and serves nothing. ``RedisSessionStore/run()`` calls it.
    package func run() async {
        core.claimRun("SessionCache")
        var trackedBefore = false
        let events: RedisInvalidations
        var lossObserver: Int?
        switch configuration.tracking {
        case .broadcast:
            events = subscriber.trackInvalidations(prefixes: [SessionKeys(prefix: keyPrefix).sessionPrefix])
        case .holders:
            guard client.trackingRedirects.claim() else {
                // Serves nothing, says why once, and waits to be cancelled like a running cache.
                observer?(
                    .disconnected(
                        RedisError(
                            .invalidCommand,
                            "another session cache in holders mode already tracks through this RedisClient; "
                                + "give each store that caches its own client")))
                await waitForCancellation()
                return
            }
            // A pool connection that tracked reads is gone: Redis forgot them and tells nobody, so nothing loaded
            // before can be trusted. The clear moves the generation on, so loads in flight are not stored either.
            lossObserver = client.trackingRedirects.addLossObserver { [core] in core.clear() }
            events = subscriber.trackInvalidations(readBy: client)
        }
        defer {
            if let lossObserver {
                client.trackingRedirects.removeLossObserver(lossObserver)
                client.trackingRedirects.release()
            }
        }
        for await event in events {
            if case .tracking = event {
                if trackedBefore { resyncCount.add(1, ordering: .relaxed) }
                trackedBefore = true
            }
            apply(event)
        }
        core.reset(serving: false)
    }

    /// Counters and state.
    public var statistics: Statistics {
        let totals = core.totals
        return Statistics(
            counts: CacheCounts(
                hits: totals.hits, misses: totals.misses, count: totals.count,
                resyncs: resyncCount.load(ordering: .relaxed)),
            invalidations: invalidations.load(ordering: .relaxed), isTracking: core.phase.isServing)
    }

    /// Applies one report of the tracking connection (the store's ``RedisSessionStore/run()`` calls this; tests may
    /// too).
    public func apply(_ event: RedisInvalidation) {
        switch event {
        case .tracking, .disconnected:
            // Tracking came up or went away: either way nothing cached before is known to be current.
            core.reset(serving: event == .tracking)
        case .all:
            core.clear()
        case .keys(let keys):
            let prefix = sessionKeyPrefix
            // The key names a session by its storage name (`{T}H`), which is what the table is keyed by.
            let names = keys.compactMap { key -> String? in
                guard key.count > prefix.count, key.starts(with: prefix) else { return nil }
                return String(decoding: key[prefix.count...], as: UTF8.self)
            }
            // Broadcast tracking reports every session written anywhere: find the few this instance holds under
            // its own CPU's lock, and take every lock only to drop those. (A load that starts after this reads
            // Redis after the write; one in flight left its mark in the table, and is found.)
            let held = core.read { state, _ in names.filter { state.table.peek($0) != nil } }
            if !held.isEmpty {
                core.write { state in
                    for name in held { state.table.remove(name) }
                }
            }
            invalidations.add(names.count, ordering: .relaxed)
        }
        observer?(event)
    }

    // MARK: The store's side

    /// The cached session and its remaining time to live, counting a hit, and a miss unless `countingMiss` is
    /// `false` (a probe whose caller loads next, and counts the miss then).
    package func session(_ id: SessionID, countingMiss: Bool = true) -> (session: Session, ttlMilliseconds: Int64)? {
        let now = core.clock.now()
        let name = id.storageName
        return core.read { state, counters -> (Session, Int64)? in
            guard state.isServing, let (slot, entry) = state.table.slotAndValue(name),
                case .loaded(let session, let ttl, let loadedAt) = entry
            else {
                if countingMiss { counters.misses += 1 }
                return nil
            }
            // A coarse clock may read up to its resolution late: count the entry that much older.
            let age = now &- loadedAt &+ core.clock.resolution
            let remaining = ttl - Int64(age / 1_000_000)
            // An expired entry is left for the next load of the session to replace (a read writes nothing).
            guard core.isFresh(storedAt: loadedAt, now: now), remaining > 0 else {
                if countingMiss { counters.misses += 1 }
                return nil
            }
            core.markUsed(slot)
            counters.hits += 1
            return (session, remaining)
        }
    }

    /// Whether a load whose result this cache will keep must ask Redis to track the read (`CLIENT CACHING YES`).
    var tracksReads: Bool { configuration.tracking == .holders }

    /// Marks a load about to read Redis; `nil` (the result will not be stored) while the cache is not serving, or
    /// while another load of the same session is in flight: the first one stores, so a hot session under steady
    /// load cannot keep replacing the mark and never be stored.
    func beginLoad(_ id: SessionID) -> LoadTicket? {
        let now = core.clock.now()
        let name = id.storageName
        return core.write { state in
            guard state.isServing else { return nil }
            if case .loading? = state.table.peek(name) { return nil }
            state.nextToken &+= 1
            core.store(name, .loading(token: state.nextToken), in: &state)
            return LoadTicket(
                id: id, token: state.nextToken, generation: state.generation, startedAt: now,
                redirections: tracksReads ? client.redirectionCount : 0)
        }
    }

    /// Stores what a load read, unless anything about that session changed since ``beginLoad(_:)``; a `nil`
    /// session (unknown or expired) only clears the mark. The entry's age counts from ``beginLoad(_:)``, so a slow
    /// reply cannot stretch the session past the expiry Redis reported.
    func finishLoad(_ ticket: LoadTicket, with session: Session?, ttlMilliseconds: Int64) {
        var cacheable = session.map { $0.encodedSize <= configuration.largestCachedSession } ?? false
        // Holders mode: a read resent after a cluster redirection went without its `CLIENT CACHING YES`, so Redis
        // may not be tracking it.
        if tracksReads && client.redirectionCount != ticket.redirections { cacheable = false }
        let name = ticket.id.storageName
        core.write { state in
            guard case .loading(let token)? = state.table.peek(name), token == ticket.token else { return }
            guard let session, cacheable, state.isServing, state.generation == ticket.generation else {
                state.table.remove(name)
                return
            }
            core.store(name, .loaded(session, ttlMilliseconds: ttlMilliseconds, loadedAt: ticket.startedAt), in: &state)
        }
    }

    /// Drops a session this instance just changed (or is about to), and cancels any load of it in flight.
    func invalidate(_ id: SessionID) {
        invalidate(storageName: id.storageName)
    }

    /// Drops a session named by its storage name (`{T}H`), as a destroy by handle knows it.
    func invalidate(storageName: String) {
        core.write { state in _ = state.table.remove(storageName) }
    }

    /// Drops every cached session of a user, and cancels every load in flight (their user is not known yet).
    func invalidate(userID: String) {
        _ = core.write { state in
            state.table.removeAll { entry in
                switch entry {
                case .loading: true
                case .loaded(let session, _, _): session.userID == userID
                }
            }
        }
    }
}

extension SessionCache {
    /// A load in flight: returned by ``beginLoad(_:)``, handed back to ``finishLoad(_:with:ttlMilliseconds:)``.
    struct LoadTicket {
        let id: SessionID
        let token: UInt64
        let generation: UInt64
        /// When the read was sent: the TTL Redis reports counts from about then, so the entry's age does too.
        let startedAt: UInt64
        /// The client's cluster redirections when the read was sent (holders mode).
        let redirections: UInt64
    }
}

/// Which changes Redis reports to an instance's ``SessionCache``.
///
/// Both keep the cache exact; they differ in what a write costs as instances are added. `session-bench scale`
/// measures both, up to 64 instances.
public enum SessionTracking: String, Sendable, Hashable, CaseIterable {
    /// Redis remembers which instance read which session and reports a change only to those (its default tracking
    /// mode, `CLIENT TRACKING ON REDIRECT <tracker> OPTIN` on the pool's connections, and `CLIENT CACHING YES` before
    /// each read the cache keeps). A write costs one report per instance that holds the session: one, with session
    /// affinity at the load balancer, however many instances run.
    case holders
    /// Every instance hears of every session write in the deployment (`CLIENT TRACKING ... BCAST PREFIX`). Nothing
    /// is tracked per read, but a write costs one report per instance.
    case broadcast
}
