import Foundation
@_spi(Internals) package import RedisClient
@_spi(Internals) public import RedisSession
import Synchronization

/// Each instance's cache of users' settings, kept current by session events.
///
/// A lookup that hits costs no Redis round trip. Entries are bounded (LRU), carry the settings version they hold and
/// expire after the configuration's `maximumAge` even if every event about them was lost.
///
/// An event is only a hint that a user's settings record changed: the cache never takes a timezone or a version from
/// it, only from the record. An event no newer than the cached version is ignored (out-of-order delivery); a newer
/// one drops the entry, and with ``Policy/refresh`` the cache reads the record at once, so the next lookup is a hit.
/// Whoever can `PUBLISH` on the channel can therefore make instances re-read records, but cannot make them show a
/// timezone or a version the record does not hold.
///
/// Gaps: until the subscription is confirmed, and from a lost subscriber connection until it is back, the cache
/// serves nothing from memory (every lookup reads Redis) and keeps nothing; when it is back, it starts empty. So no
/// value cached before a gap is ever served after it.
///
/// Run it as a service: ``run()`` subscribes and applies events until its task is cancelled.
public final class UserSettingsCache: Sendable {
    /// What a change event does to a cached entry.
    public enum Policy: String, Sendable, Hashable {
        /// Drop the entry and read the record at once, on the cache's own task (no Redis read on the next lookup).
        case refresh
        /// Drop the entry (the next lookup re-reads the record).
        case invalidate
    }

    /// What the cache has done, readable at any time (for `/stats`). `hits`, `misses`, `count` and `resyncs` read
    /// through to ``counts``.
    public struct Statistics: CacheStatistics {
        /// Lookups answered from memory or not, entries held, and restarts after a gap in the subscription.
        public var counts: CacheCounts
        /// Events applied: the entry was dropped (and, with ``Policy/refresh``, the record read shows the change).
        public var eventsApplied: Int
        /// Events ignored: no newer than the cached version, of a kind this version does not know, or naming a
        /// version the record does not have (forged, or lost by a failover).
        public var eventsIgnored: Int
        /// Payloads on the channel that were not events.
        public var eventsMalformed: Int
        /// Publish-to-apply delay of the last event, in milliseconds (clocks of two instances: indicative).
        public var lastEventLagMilliseconds: Double?
        /// Whether the subscription is live and the cache is serving from memory.
        public var isSubscribed: Bool
    }

    /// Size, staleness bound and policy.
    public struct Configuration: CacheConfiguration {
        /// How many users, and how old an entry may be served without an event: the bound on staleness if an event
        /// is lost.
        public var bounds: CacheBounds
        /// What change events do. Default ``Policy/refresh``.
        public var policy: Policy

        /// Creates a configuration; every argument has a default (10,000 users, 60 s, refresh).
        public init(capacity: Int = 10_000, maximumAge: Duration = .seconds(60), policy: Policy = .refresh) {
            self.bounds = CacheBounds(capacity: capacity, maximumAge: maximumAge)
            self.policy = policy
        }
    }

    private struct Entry: Sendable {
        var timezone: String
        var version: Int
        var storedAt: UInt64
    }

    /// Where misses are read from.
    public let settings: UserSettingsStore
    /// Where events come from.
    public let bus: SessionEventBus
    /// Size, staleness bound and policy.
    public let configuration: Configuration

    private let core: CacheCore<Entry>
    private let applied = Atomic<Int>(0)
    private let ignored = Atomic<Int>(0)
    private let malformed = Atomic<Int>(0)
    private let resyncCount = Atomic<Int>(0)
    private let lastLagMicroseconds = Atomic<Int>(-1)
    private let observer: (@Sendable (SessionEventBus.Notification) -> Void)?

    /// Creates a cache.
    ///
    /// - Parameters:
    ///   - settings: The settings records to read on a miss.
    ///   - bus: The events to follow.
    ///   - configuration: Size, staleness bound and policy.
    ///   - observer: Called after each notification is applied (for benchmarks and tests).
    public convenience init(
        settings: UserSettingsStore, bus: SessionEventBus, configuration: Configuration = Configuration(),
        observer: (@Sendable (SessionEventBus.Notification) -> Void)? = nil
    ) {
        self.init(settings: settings, bus: bus, configuration: configuration, clock: .coarse, observer: observer)
    }

    /// Creates a cache that reads the time from `clock` (tests move a `ManualClock`).
    package init(
        settings: UserSettingsStore, bus: SessionEventBus, configuration: Configuration = Configuration(),
        clock: MonotonicClock, observer: (@Sendable (SessionEventBus.Notification) -> Void)? = nil
    ) {
        self.settings = settings
        self.bus = bus
        self.configuration = configuration
        self.observer = observer
        self.core = CacheCore(bounds: configuration.bounds, clock: clock)
    }

    /// Subscribes to the events channel and applies events until the calling task is cancelled.
    ///
    /// - Important: Call it once per cache.
    public func run() async {
        core.claimRun("UserSettingsCache")
        for await notification in bus.subscribe() {
            if let refresh = handle(notification) {
                await read(refresh)
            }
            observer?(notification)
        }
        core.reset(serving: false)
    }

    /// The user's timezone: from memory when cached, else from the settings record (and then cached).
    ///
    /// - Returns: The timezone, or `nil` when the user has no settings record.
    /// - Throws: ``SettingsErrorCode/storeUnavailable`` on a miss while Redis is unreachable.
    public func timezone(for userID: String) async throws(SettingsError) -> String? {
        let (cached, generation) = lookup(userID)
        if let cached { return cached }
        guard let record = try await settings.read(userID: userID) else { return nil }
        remember(userID, record, generation: generation)
        return record.timezone
    }

    /// The cached timezone only, counting a hit or a miss; never reads Redis.
    public func cachedTimezone(for userID: String) -> String? { lookup(userID).timezone }

    /// Records settings this instance just wrote, so its next lookup is a hit without waiting for its own event.
    /// Ignored when older than what is cached, or while the cache is not serving.
    public func remember(_ userID: String, _ record: UserSettings) {
        remember(userID, record, generation: core.phase.generation)
    }

    /// Counters and state.
    public var statistics: Statistics {
        let totals = core.totals
        let lag = lastLagMicroseconds.load(ordering: .relaxed)
        return Statistics(
            counts: CacheCounts(
                hits: totals.hits, misses: totals.misses, count: totals.count,
                resyncs: resyncCount.load(ordering: .relaxed)),
            eventsApplied: applied.load(ordering: .relaxed), eventsIgnored: ignored.load(ordering: .relaxed),
            eventsMalformed: malformed.load(ordering: .relaxed),
            lastEventLagMilliseconds: lag < 0 ? nil : Double(lag) / 1000, isSubscribed: core.phase.isServing)
    }

    /// Applies one notification from the bus without reading Redis (``run()`` also reads the record a change event
    /// names, with ``Policy/refresh``); for tests and tools.
    public func apply(_ notification: SessionEventBus.Notification) {
        if handle(notification) != nil { countEvent(applied: true) }
        observer?(notification)
    }

    // MARK: Internals

    /// Applies a notification; returns the record read a change event asks for, if any.
    private func handle(_ notification: SessionEventBus.Notification) -> Refresh? {
        switch notification {
        case .subscribed:
            core.reset(serving: true)
        case .disconnected:
            core.reset(serving: false)
        case .resubscribed:
            core.reset(serving: true)
            resyncCount.add(1, ordering: .relaxed)
        case .malformed:
            malformed.add(1, ordering: .relaxed)
        case .event(let event):
            let lag = Date().timeIntervalSince1970 * 1000 - Double(event.publishedAtMilliseconds)
            lastLagMicroseconds.store(max(0, Int(lag * 1000)), ordering: .relaxed)
            return drop(for: event)
        }
        return nil
    }

    /// Drops the entry a change event names, unless the cached version is as new; returns the read to make.
    private func drop(for event: SessionEvent) -> Refresh? {
        switch event.kind {
        case .loggedIn, .settingsChanged:
            let refresh = core.write { state -> Refresh? in
                // Not subscribed (or in a gap): nothing is cached, so there is nothing to apply it to.
                guard state.isServing else { return nil }
                if let entry = state.table.peek(event.user), event.version <= entry.version { return nil }
                state.table.remove(event.user)
                // A read that started before this event may return the record from before the change: the new
                // generation keeps it out of the cache.
                state.generation &+= 1
                return Refresh(user: event.user, claimedVersion: event.version, generation: state.generation)
            }
            if refresh == nil { ignored.add(1, ordering: .relaxed) }
            return refresh
        case .loggedOut, .sessionsRevoked:
            applied.add(1, ordering: .relaxed)
            return nil
        default:
            ignored.add(1, ordering: .relaxed)
            return nil
        }
    }

    /// Reads the record a change event named and caches it (``Policy/refresh``), counting the event applied only if
    /// the record holds the version the event claimed.
    private func read(_ refresh: Refresh) async {
        guard configuration.policy == .refresh else {
            countEvent(applied: true)
            return
        }
        guard let record = try? await settings.read(userID: refresh.user) else {
            // Redis failed, or the user has no record: the next lookup reads it.
            countEvent(applied: false)
            return
        }
        remember(refresh.user, record, generation: refresh.generation)
        countEvent(applied: record.version >= refresh.claimedVersion)
    }

    private func countEvent(applied wasApplied: Bool) {
        if wasApplied {
            applied.add(1, ordering: .relaxed)
        } else {
            ignored.add(1, ordering: .relaxed)
        }
    }

    private func lookup(_ userID: String) -> (timezone: String?, generation: UInt64) {
        let now = core.clock.now()
        return core.read { state, counters in
            guard state.isServing, let (slot, entry) = state.table.slotAndValue(userID),
                core.isFresh(storedAt: entry.storedAt, now: now)
            else {
                counters.misses += 1
                return (nil, state.generation)
            }
            core.markUsed(slot)
            counters.hits += 1
            return (entry.timezone, state.generation)
        }
    }

    private func remember(_ userID: String, _ record: UserSettings, generation: UInt64) {
        let now = core.clock.now()
        core.write { state in
            guard state.isServing, state.generation == generation else { return }
            if let entry = state.table.peek(userID), record.version < entry.version { return }
            core.store(userID, Entry(timezone: record.timezone, version: record.version, storedAt: now), in: &state)
        }
    }
}

extension UserSettingsCache {
    /// What a change event asks of ``run()``: read the user's record, and store it unless a gap or another event came
    /// in between.
    struct Refresh {
        let user: String
        let claimedVersion: Int
        let generation: UInt64
    }
}
