#if Hummingbird
public import CoreMetrics
import Foundation
import RedisClient
import RedisSession
public import ServiceLifecycle
public import SettingsSync
import Synchronization

/// The component's counters as swift-metrics metrics, for Prometheus or any other backend.
///
/// The root package has no package dependencies: it counts (``RedisSessionStore/statistics``, the caches'
/// statistics, `RedisClient.statistics`), and this service turns what it counted into metrics, sampling every
/// `interval` (1 s by default) and adding what changed. The event lag is recorded per event
/// (``recordEventLag(_:)``), and the 503s by ``RedisSessionMiddleware`` as they happen.
///
/// | metric | kind | what |
/// | --- | --- | --- |
/// | `rsess_session_loads_total{source="memory"\|"redis"}` | counter | session loads, from the session cache or from Redis |
/// | `rsess_session_saves_total` | counter | session writes (saves with changes, regenerations) |
/// | `rsess_unavailable_total` | counter | requests answered 503 because the store could not answer |
/// | `rsess_settings_events_total{result="applied"\|"ignored"\|"malformed"}` | counter | events on the channel |
/// | `rsess_cache_resyncs_total{cache="settings"\|"sessions"}` | counter | caches restarted empty after a gap |
/// | `rsess_settings_event_lag_seconds` | timer (a histogram) | publish-to-apply delay of each event |
/// | `rsess_redis_batches_total`, `rsess_redis_polled_batches_total`, `rsess_redis_poll_hits_total` | counter | the pool's batches, and how polling for replies fared |
/// | `rsess_cache_serving{cache="settings"\|"sessions"}` | gauge | 1 while a cache serves from memory |
public final class RedisSessionMetrics: Service, Sendable {
    let loadsFromMemory: Counter
    let loadsFromRedis: Counter
    let saves: Counter
    let unavailable: Counter
    let eventsApplied: Counter
    let eventsIgnored: Counter
    let eventsMalformed: Counter
    let settingsResyncs: Counter
    let sessionResyncs: Counter
    let eventLag: CoreMetrics.Timer
    let batches: Counter
    let polledBatches: Counter
    let pollHits: Counter
    let settingsServing: Gauge
    let sessionsServing: Gauge

    /// The sources sampled; set once by ``RedisSessionKit``.
    private let sources = Mutex<Sources?>(nil)
    private let interval: Duration

    struct Sources: Sendable {
        var client: RedisClient
        var store: RedisSessionStore
        var settingsCache: UserSettingsCache
        var sessionCache: SessionCache?
        var last = Sample()
    }

    /// What was counted at the last sample.
    struct Sample: Sendable {
        var loadsFromMemory = 0
        var loadsFromRedis = 0
        var saves = 0
        var applied = 0
        var ignored = 0
        var malformed = 0
        var settingsResyncs = 0
        var sessionResyncs = 0
        var batches = 0
        var polledBatches = 0
        var pollHits = 0
    }

    /// Creates the metrics on `factory` (the process's `MetricsSystem` by default).
    ///
    /// - Parameters:
    ///   - factory: Where the metrics are registered: a `PrometheusMetricsFactory`, say.
    ///   - interval: How often the component's counters are read.
    public init(factory: any MetricsFactory = MetricsSystem.factory, interval: Duration = .seconds(1)) {
        self.interval = interval
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: dimensions, factory: factory)
        }
        loadsFromMemory = counter("rsess_session_loads_total", [("source", "memory")])
        loadsFromRedis = counter("rsess_session_loads_total", [("source", "redis")])
        saves = counter("rsess_session_saves_total")
        unavailable = counter("rsess_unavailable_total")
        eventsApplied = counter("rsess_settings_events_total", [("result", "applied")])
        eventsIgnored = counter("rsess_settings_events_total", [("result", "ignored")])
        eventsMalformed = counter("rsess_settings_events_total", [("result", "malformed")])
        settingsResyncs = counter("rsess_cache_resyncs_total", [("cache", "settings")])
        sessionResyncs = counter("rsess_cache_resyncs_total", [("cache", "sessions")])
        eventLag = CoreMetrics.Timer(label: "rsess_settings_event_lag_seconds", dimensions: [], factory: factory)
        batches = counter("rsess_redis_batches_total")
        polledBatches = counter("rsess_redis_polled_batches_total")
        pollHits = counter("rsess_redis_poll_hits_total")
        settingsServing = Gauge(label: "rsess_cache_serving", dimensions: [("cache", "settings")], factory: factory)
        sessionsServing = Gauge(label: "rsess_cache_serving", dimensions: [("cache", "sessions")], factory: factory)
    }

    /// Follows these parts' counters.
    func follow(
        client: RedisClient, store: RedisSessionStore, settingsCache: UserSettingsCache, sessionCache: SessionCache?
    ) {
        sources.withLock {
            $0 = Sources(client: client, store: store, settingsCache: settingsCache, sessionCache: sessionCache)
        }
    }

    /// Records the publish-to-apply delay of one event (the settings cache's observer calls this).
    public func recordEventLag(_ event: SessionEvent) {
        let lag = Date().timeIntervalSince(event.publishedAt)
        eventLag.recordNanoseconds(Int64(max(0, lag) * 1e9))
    }

    /// Counts one request answered 503.
    public func countUnavailable() {
        unavailable.increment()
    }

    /// Samples every `interval` until graceful shutdown, and once more at the end.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            sample()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
        sample()
    }

    /// Reads every counter once and adds what changed since the last reading.
    public func sample() {
        sources.withLock { sources in
            guard var current = sources else { return }
            var now = Sample()
            let store = current.store.statistics
            now.loadsFromMemory = store.loadsFromMemory
            now.loadsFromRedis = store.loadsFromRedis
            now.saves = store.saves
            let settings = current.settingsCache.statistics
            now.applied = settings.eventsApplied
            now.ignored = settings.eventsIgnored
            now.malformed = settings.eventsMalformed
            now.settingsResyncs = settings.resyncs
            now.sessionResyncs = current.sessionCache?.statistics.resyncs ?? 0
            let client = current.client.statistics
            now.batches = client.batches
            now.polledBatches = client.polledBatches
            now.pollHits = client.pollHits
            let last = current.last
            add(loadsFromMemory, now.loadsFromMemory, last.loadsFromMemory)
            add(loadsFromRedis, now.loadsFromRedis, last.loadsFromRedis)
            add(saves, now.saves, last.saves)
            add(eventsApplied, now.applied, last.applied)
            add(eventsIgnored, now.ignored, last.ignored)
            add(eventsMalformed, now.malformed, last.malformed)
            add(settingsResyncs, now.settingsResyncs, last.settingsResyncs)
            add(sessionResyncs, now.sessionResyncs, last.sessionResyncs)
            add(batches, now.batches, last.batches)
            add(polledBatches, now.polledBatches, last.polledBatches)
            add(pollHits, now.pollHits, last.pollHits)
            settingsServing.record(settings.isSubscribed ? 1 : 0)
            sessionsServing.record(current.sessionCache?.statistics.isTracking == true ? 1 : 0)
            current.last = now
            sources = current
        }
    }

    private func add(_ counter: Counter, _ now: Int, _ before: Int) {
        if now > before { counter.increment(by: Int64(now - before)) }
    }
}
#endif  // Hummingbird
