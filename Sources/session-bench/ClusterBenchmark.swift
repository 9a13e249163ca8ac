import Foundation
import RedisClient
import RedisSession
import RedisTesting

/// `session-bench cluster`: the session figures on a 3-primary Redis Cluster started for the run. Session loads from 64
/// tasks are measured against `redis-benchmark --cluster -c 64 -t get` on the same cluster in the same sitting, along
/// with event propagation and the time a destroy takes to reach another instance's session cache (both at p99).
///
/// On a 2-core machine three primaries, the benchmark and the client share two cores, so the ratio says how the
/// client compares with Redis's own tool on the same cluster, not how a cluster scales.
struct ClusterBenchmark {
    let options: BenchOptions

    func run() async throws -> BenchReport {
        let cluster = try await RedisCluster.start(primaries: 3, replicas: 0, server: options.server)
        defer { cluster.stop() }
        let seeds = try await cluster.primaryPorts()
        let tool = RedisBenchmarkTool(host: "127.0.0.1", port: seeds[0], cluster: true)
        let configuration = try options.clientConfiguration(url: cluster.url)
        let client = RedisClient(configuration: configuration)
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: "bench:"))

        // 1,000 users: their slots cover every primary.
        let sessions = try await createBenchmarkSessions(store)
        _ = try await loads(store, sessions, operations: 20_000)
        var reference: [Double] = []
        var load: [Double] = []
        for _ in 0..<options.rounds {
            reference.append(try tool.requestsPerSecond(test: "get", clients: 64, requests: 200_000))
            load.append(try await loads(store, sessions, operations: 200_000))
        }
        let cached = try await SessionCacheFigures.measure(
            configuration: configuration, writer: store, sessions: sessions, rounds: 1)
        await client.close()

        // Event propagation, on the same cluster: the events benchmark, pointed at it.
        var eventOptions = options
        eventOptions.redisURL = cluster.url
        let events = try await EventsBenchmark(options: eventOptions).run()

        var report = BenchReport()
        report.section(
            "cluster of 3 primaries, 64 concurrent tasks, median of \(options.rounds) rounds, "
                + "pool of \(configuration.poolSize) per primary")
        report.rate("cluster.redis_benchmark.get.c64", "redis-benchmark --cluster -c 64 -t get", median(reference))
        report.rate("cluster.session.load.c64", "session load (read + throttled touch)", median(load))
        report.ratio(
            "cluster.ratio.load.c64", "load vs redis-benchmark --cluster", median(load) / median(reference),
            target: ">= 1.5x")
        report.section("events and the session cache on the cluster")
        report.figure(
            "cluster.propagation.p99_ms", "settings event applied on 3 other instances, p99 (target < 1 ms)",
            events.value("propagation.p99_ms") ?? .nan, unit: "ms", digits: 3)
        report.figure(
            "cluster.propagation.p50_ms", "the same, p50", events.value("propagation.p50_ms") ?? .nan, unit: "ms",
            digits: 3)
        report.figure(
            "cluster.invalidation.p99_ms", "a destroy on one pool until another pool's cache dropped it, p99",
            percentile(cached.revocationMilliseconds, 0.99), unit: "ms", digits: 3)
        report.figure(
            "cluster.invalidation.p50_ms", "the same, p50", percentile(cached.revocationMilliseconds, 0.50), unit: "ms",
            digits: 3)
        return report
    }

    private func loads(_ store: RedisSessionStore, _ ids: [SessionID], operations: Int) async throws -> Double {
        try await throughput(tasks: 64, operations: operations) { index in
            guard try await store.load(id: ids[index % ids.count]) != nil else {
                throw BenchOptions.Problem(description: "a benchmark session vanished")
            }
        }
    }
}
