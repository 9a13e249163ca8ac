import RedisClient
import Logging
import Foundation
import Hummingbird
import HummingbirdRedisSession
import NIOCore
import Prometheus
import RedisSession
import SettingsSync

/// `GET /healthz` and `GET /stats`, for load balancers, the rig and people; `GET /metrics`, for Prometheus.
struct OperationsRoutes: Sendable {
    let state: AppState

    func register(on router: Router<AppRequestContext>) {
        router.get("/healthz") { _, _ in await health() }
        router.get("/stats") { _, _ in stats() }
        router.get("/metrics") { _, _ in metrics() }
        router.get("/app.css") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "public, max-age=86400"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: stylesheet)))
        }
    }

    /// `200` when Redis answers and accepts writes and the subscriber is connected, else `503` with the reason: a
    /// Redis that answers but refuses writes (`OOM` at `maxmemory`, `READONLY` replica, `MISCONF` after a failed
    /// save) is `degraded`, since logins and sessions cannot be written. The session cache's state is shown but does
    /// not make the instance unhealthy: without tracking it reads every session from Redis.
    func health() async -> Response {
        var problems: [String] = []
        var redis = "ok"
        do throws(RedisError) {
            try await state.client.send("PING")
            // A write that costs nothing and expires: does Redis take writes?
            let probe = state.configuration.keyPrefix + "health:" + state.instanceID
            let reply = try await state.client.send("SET", probe, "1", "PX", 10_000)
            if case .error(let message) = reply { throw RedisError(.serverError, message) }
        } catch  where error.code == .serverError {
            redis = "refuses writes"
            problems.append("redis refuses writes: \(error.message)")
        } catch {
            redis = "down"
            problems.append("redis: \(error)")
        }
        let subscribed = state.cache.statistics.isSubscribed
        if !subscribed { problems.append("subscriber: not subscribed to the events channel") }
        let status = problems.isEmpty ? "ok" : redis == "refuses writes" ? "degraded" : "unavailable"
        var body: [String: Any] = [
            "instance": state.instanceID, "status": status, "redis": redis,
            "subscriber": subscribed ? "subscribed" : "disconnected", "session_cache": sessionCacheState,
        ]
        if !problems.isEmpty { body["reason"] = problems.joined(separator: "; ") }
        return Pages.json(body, status: problems.isEmpty ? .ok : .serviceUnavailable)
    }

    /// The component's metrics in the Prometheus text format (the kit's `RedisSessionMetrics`, sampled every
    /// second and at this scrape).
    func metrics() -> Response {
        state.kit.metrics?.sample()
        var buffer: [UInt8] = []
        state.registry.emit(into: &buffer)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
    }

    private var sessionCacheState: String {
        guard let cache = state.sessionCache else { return "off" }
        return cache.statistics.isTracking ? "tracking" : "not tracking"
    }

    /// The cache and event counters, flat keys. The `sessions.cache_*` keys are absent when the session cache is off.
    func stats() -> Response {
        let stats = state.cache.statistics
        let client = state.client.statistics
        var body: [String: Any] = [
            "instance": state.instanceID, "cache.hits": stats.hits, "cache.misses": stats.misses,
            "cache.entries": stats.count, "events.applied": stats.eventsApplied, "events.ignored": stats.eventsIgnored,
            "events.malformed": stats.eventsMalformed, "subscriber.resyncs": stats.resyncs,
            "subscriber.connected": stats.isSubscribed,
            "events.last_lag_ms": stats.lastEventLagMilliseconds.map { ($0 * 1000).rounded() / 1000 } ?? NSNull(),
            "redis.connections": state.client.connectedCount, "redis.requests": client.requests,
            "redis.batches": client.batches, "redis.polled_batches": client.polledBatches,
            "redis.poll_hits": client.pollHits,
        ]
        if let cache = state.sessionCache {
            let sessions = cache.statistics
            body["sessions.cache_hits"] = sessions.hits
            body["sessions.cache_misses"] = sessions.misses
            body["sessions.cache_entries"] = sessions.count
            body["sessions.invalidations"] = sessions.invalidations
            body["sessions.cache_resyncs"] = sessions.resyncs
            body["sessions.cache_tracking"] = sessions.isTracking
        }
        return Pages.json(body)
    }
}
