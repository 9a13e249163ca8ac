import RedisClient
import Logging
import Foundation
import Hummingbird
import HummingbirdRedisSession
import HTTPTypes
import NIOCore
import Prometheus
import RedisSession
import SettingsSync

/// The operations endpoints. They are split by who may see them:
///
/// - On the site's port, for load balancers: `GET /healthz`, which says only `ok`, `degraded` or `unavailable`.
/// - On the admin listener (``WebTierConfiguration/adminPort``, loopback by default), for the rig, Prometheus and
///   people: `GET /healthz` with its reasons, `GET /stats` and `GET /metrics`. They name the instance and count its
///   outages, which is nobody's business through the load balancer.
struct OperationsRoutes: Sendable {
    let state: AppState

    /// The public health check, on the site's router.
    func registerPublic(on router: Router<AppRequestContext>) {
        router.get("/healthz") { _, _ in
            let health = await health()
            return Response(
                status: health.httpStatus, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: health.status + "\n")))
        }
    }

    /// Everything, on the admin listener's router.
    func registerAdmin(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in await health().response }
        router.get("/stats") { _, _ in stats() }
        router.get("/metrics") { _, _ in metrics() }
    }

    /// What the health check found: the status word, and the detail the admin listener shows.
    struct Health {
        var status: String
        var body: [String: Any]
        var httpStatus: HTTPResponse.Status { status == "ok" ? .ok : .serviceUnavailable }
        var response: Response { Pages.json(body, status: httpStatus) }
    }

    /// `200` when Redis answers and accepts writes and the subscriber is connected, else `503` with the reason: a
    /// Redis that answers but refuses writes (`OOM` at `maxmemory`, `READONLY` replica, `MISCONF` after a failed
    /// save) is `degraded`, since logins and sessions cannot be written. The session cache's state is shown but does
    /// not make the instance unhealthy: without tracking it reads every session from Redis.
    func health() async -> Health {
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
        return Health(status: status, body: body)
    }

    /// The component's metrics in the Prometheus text format (the kit's `RedisSessionMetrics`, sampled every
    /// second and at this scrape), then Hummingbird's request metrics (``HTTPMetrics``).
    func metrics() -> Response {
        state.kit.metrics?.sample()
        var buffer: [UInt8] = []
        state.registry.emit(into: &buffer)
        HTTPMetrics.registry.emit(into: &buffer)
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
            body["sessions.cache_tracking_mode"] = cache.configuration.tracking.rawValue
        }
        return Pages.json(body)
    }
}
