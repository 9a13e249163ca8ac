import Foundation
import RedisClient
import RedisSession
import RedisTesting

/// `session-bench scale`: many web instances in one process, each with its own pool, session cache and tracker,
/// against one Redis and against a 3-primary cluster, in both tracking modes and with both ways of balancing.
///
/// The workload is 20,000 signed-in sessions. A request loads its session on the instance the balancer picks; every
/// 20th request also saves it (5 % saves); and the store slides the idle timeout at most once per touch interval per
/// session (its default 60 s), with each session's clock started at a random point of that interval, so touches
/// arrive at the steady rate of a deployment that has been running for a while. Each configuration starts with new
/// instances, loads every session once through the balancer (the warm-up), then measures.
///
/// - **Routing.** `affinity` sends a session to the instance its ID hashes to, as nginx's
///   `hash $cookie_rsess consistent` does; `roundrobin` sends request *k* to instance *k* mod *N*.
/// - **Figures**, summed over the instances: invalidation reports received per session write (saves and touches),
///   the cache's hit ratio, the server's CPU (`INFO cpu`, every primary) per 1,000 requests and this process's CPU
///   per request, all at one offered rate (`--rate`, default 10,000 requests a second, which every configuration
///   sustains here), then the requests per second of an unpaced run.
///
/// All instances share this machine's two cores with the servers, so the rates are lower than a real deployment's;
/// the per-write and per-request figures are what scales.
struct ScaleBenchmark {
    let options: BenchOptions
    /// Instance counts to simulate unless `--instances` names others.
    let instanceCounts = [2, 8, 32, 64]
    let sessions = 20_000
    /// Requests measured per configuration at the offered rate, after a warm-up of one load per session.
    var requests: Int { options.requests ?? 30_000 }
    /// Concurrent requests in flight per instance, as from a load balancer's connections to each. Per instance, so
    /// that every configuration pipelines alike and the figures compare the tracking, not the batching: a fixed
    /// total spread over more instances would leave each connection one request per write.
    let concurrencyPerInstance = 16

    enum Topology: String {
        case standalone, cluster
    }

    func run() async throws -> BenchReport {
        var report = BenchReport()
        for topology in options.scaleTopologies {
            switch topology {
            case .standalone:
                let server = try await RedisServer.start(server: options.server)
                defer { server.stop() }
                try await measure(on: server.url, nodes: [server.url], topology: topology, into: &report)
            case .cluster:
                let cluster = try await RedisCluster.start(primaries: 3, replicas: 0, server: options.server)
                defer { cluster.stop() }
                let nodes = try await cluster.primaryPorts().map { "redis://127.0.0.1:\($0)" }
                try await measure(on: cluster.url, nodes: nodes, topology: topology, into: &report)
            }
        }
        return report
    }

    private func measure(on url: String, nodes: [String], topology: Topology, into report: inout BenchReport)
        async throws
    {
        let setup = RedisClient(configuration: try RedisConfiguration(url: url))
        do {
            try await measure(with: setup, on: url, nodes: nodes, topology: topology, into: &report)
            await setup.close()
        } catch {
            await setup.close()
            throw error
        }
    }

    private func measure(
        with setup: RedisClient, on url: String, nodes: [String], topology: Topology, into report: inout BenchReport
    ) async throws {
        let store = RedisSessionStore(client: setup, configuration: Self.storeConfiguration)
        var ids: [SessionID] = []
        ids.reserveCapacity(sessions)
        for index in 0..<sessions {
            ids.append(
                try await store.create(
                    userID: "user\(index)", attributes: ["timezone": "Europe/Paris", "n": "0"]
                ).id)
        }
        let keyPrefix = topology == .cluster ? "cluster." : ""
        report.section(
            "\(topology == .cluster ? "3-primary cluster" : "one Redis"): \(sessions) sessions, \(requests) requests "
                + "per configuration offered at \(options.scaleRate)/s (then \(sessions) unpaced for the rate), up to "
                + "\(concurrencyPerInstance) in flight per instance, 5 % saves, touches every 60 s per session")
        for tracking in [SessionTracking.holders, .broadcast] {
            for routing in Routing.allCases {
                for count in options.instanceCounts ?? instanceCounts {
                    try await age(ids, client: setup)
                    let figures = try await simulate(
                        instances: count, tracking: tracking, routing: routing, url: url, nodes: nodes, ids: ids)
                    let key = "\(keyPrefix)scale.\(tracking.rawValue).\(routing.rawValue).i\(count)"
                    let label = "\(tracking.rawValue), \(routing.rawValue), \(count) instances:"
                    report.figure(
                        key + ".invalidations_per_write", label + " reports per write",
                        figures.invalidationsPerWrite, unit: "", digits: 2)
                    report.figure(
                        key + ".writes_per_1k", label + " session writes per 1,000 requests", figures.writesPer1k,
                        unit: "", digits: 1)
                    report.figure(key + ".hit_ratio", label + " hit ratio", figures.hitRatio, unit: "", digits: 3)
                    report.figure(
                        key + ".redis_cpu_ms_per_1k", label + " Redis CPU per 1,000 requests",
                        figures.redisCPUMillisecondsPer1k, unit: "ms", digits: 1)
                    report.figure(
                        key + ".instance_cpu_us_per_request", label + " instance CPU per request",
                        figures.instanceCPUMicrosecondsPerRequest, unit: "µs", digits: 1)
                    report.rate(key + ".requests_per_second", label + " requests", figures.requestsPerSecond)
                }
            }
        }
    }

    enum Routing: String, CaseIterable {
        case affinity, roundrobin
    }

    struct Figures {
        var invalidationsPerWrite: Double
        /// Saves and touches, which are what Redis reports.
        var writesPer1k: Double
        var hitRatio: Double
        var redisCPUMillisecondsPer1k: Double
        var instanceCPUMicrosecondsPerRequest: Double
        var requestsPerSecond: Double
    }

    /// One simulated instance: the same objects a web instance runs.
    private struct Instance {
        let client: RedisClient
        let store: RedisSessionStore
        let cache: SessionCache
    }

    static let storeConfiguration = SessionStoreConfiguration(
        keyPrefix: "scale:", idleTimeout: .seconds(3600), touchInterval: .seconds(60))

    /// Starts every session's idle clock at a random point of its touch interval, so each becomes due for a touch
    /// once during the next 60 s, spread evenly: the steady state of a running deployment.
    private func age(_ ids: [SessionID], client: RedisClient) async throws {
        let keys = SessionKeys(prefix: Self.storeConfiguration.keyPrefix)
        let idle = Self.storeConfiguration.idleTimeout.wholeMilliseconds
        let interval = Self.storeConfiguration.touchInterval.wholeMilliseconds
        var generator = SystemRandomNumberGenerator()
        for start in stride(from: 0, to: ids.count, by: 500) {
            let commands = ids[start..<min(start + 500, ids.count)].map { id in
                let remaining = idle - interval + Int64.random(in: 1_000...interval, using: &generator)
                return RedisCommand(strings: ["PEXPIRE", keys.session(id), String(remaining)])
            }
            _ = try await client.pipeline(commands)
        }
    }

    private func simulate(
        instances count: Int, tracking: SessionTracking, routing: Routing, url: String, nodes: [String],
        ids: [SessionID]
    ) async throws -> Figures {
        var configuration = try RedisConfiguration(url: url)
        // 64 instances share two cores here: one connection per instance (per primary) keeps the threads in check.
        configuration.poolSize = 1
        configuration.busyPollWindow = .zero
        var instances: [Instance] = []
        for _ in 0..<count {
            let client = RedisClient(configuration: configuration)
            let store = RedisSessionStore(
                client: client, configuration: Self.storeConfiguration,
                cache: SessionCache.Configuration(capacity: sessions, tracking: tracking))
            guard let cache = store.cache else { throw BenchOptions.Problem(description: "the store has no cache") }
            instances.append(Instance(client: client, store: store, cache: cache))
        }
        let running = instances
        let figures = try await withThrowingTaskGroup(of: Void.self) { group -> Figures in
            for instance in running { group.addTask { await instance.store.run() } }
            defer { group.cancelAll() }
            return try await drive(running, routing: routing, nodes: nodes, ids: ids)
        }
        for instance in instances { await instance.client.close() }
        return figures
    }

    /// Warms the instances' caches through the balancer, then measures.
    private func drive(_ instances: [Instance], routing: Routing, nodes: [String], ids: [SessionID]) async throws
        -> Figures
    {
        let count = instances.count
        let deadline = ContinuousClock.now + .seconds(30)
        while !instances.allSatisfy({ $0.cache.statistics.isTracking }) {
            guard ContinuousClock.now < deadline else {
                throw BenchOptions.Problem(description: "the simulated instances' caches did not start tracking")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let shared = instances
        // The instance each session is pinned to under affinity, hashed once.
        let pinned = ids.map { Int(Self.affinityHash($0) % UInt64(count)) }
        let byAffinity = routing == .affinity
        let route: @Sendable (Int, Int) -> Int = { session, request in
            byAffinity ? pinned[session] : request % count
        }

        // Warm-up: every session once, through the balancer.
        _ = try await throughput(tasks: concurrencyPerInstance * count, operations: ids.count) { index in
            _ = try await shared[route(index, index)].store.load(id: ids[index])
        }

        let stamp = UInt64.random(in: 0...UInt64.max)
        let tasks = concurrencyPerInstance * count
        /// Request `number`: its session's load on the instance the balancer picks, and every 20th a save.
        let request: @Sendable (Int) async throws -> Void = { number in
            // A fixed pseudo-random sequence of sessions, the same in every configuration and unrelated to the
            // round-robin order.
            let session = Int(Self.mix(UInt64(number)) % UInt64(ids.count))
            let store = shared[route(session, number)].store
            guard var loaded = try await store.load(id: ids[session]) else {
                throw BenchOptions.Problem(description: "a simulated session vanished")
            }
            if number % 20 == 0 {
                // A value no earlier configuration wrote: the sessions outlive each configuration.
                loaded["n"] = "\(stamp).\(number)"
                try await store.save(&loaded)
            }
        }

        // The costs, at the same offered rate in every configuration: how much CPU a command costs Redis depends on
        // how busy it is (one epoll wake-up per command when idle, many commands per wake-up when busy), and a
        // saturated run would compare load levels, not tracking modes.
        let before = Totals(instances)
        let redisBefore = try await redisCPUSeconds(nodes)
        let cpuBefore = processCPUSeconds()
        let requests = self.requests
        try await paced(tasks: tasks, requests: requests, perSecond: options.scaleRate, request)
        let cpu = processCPUSeconds() - cpuBefore
        let redis = try await redisCPUSeconds(nodes) - redisBefore
        // Reports of the last writes are still on their way: wait for them to land before counting.
        try await Task.sleep(for: .milliseconds(200))
        let after = Totals(instances)

        // Then the most it serves, unpaced.
        let rate = try await throughput(tasks: tasks, operations: ids.count) { number in
            try await request(requests + number)
        }

        let writes = Double((after.saves - before.saves) + (after.touches - before.touches))
        let hits = Double(after.hits - before.hits)
        let misses = Double(after.misses - before.misses)
        return Figures(
            invalidationsPerWrite: writes > 0 ? Double(after.invalidations - before.invalidations) / writes : 0,
            writesPer1k: writes * 1000 / Double(requests),
            hitRatio: hits + misses > 0 ? hits / (hits + misses) : 0,
            redisCPUMillisecondsPer1k: redis * 1000 / (Double(requests) / 1000),
            instanceCPUMicrosecondsPerRequest: cpu * 1e6 / Double(requests),
            requestsPerSecond: rate)
    }

    /// Runs `requests` requests at `perSecond`, spread over `tasks` tasks: request *n* starts at *n* / `perSecond`
    /// after the start, or as soon as a task is free when the run falls behind.
    private func paced(
        tasks: Int, requests: Int, perSecond: Int, _ request: @escaping @Sendable (Int) async throws -> Void
    ) async throws {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for number in stride(from: task, to: requests, by: tasks) {
                        let due = start + .nanoseconds(Int64(number) * 1_000_000_000 / Int64(perSecond))
                        if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
                        try await request(number)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The instance a session's cookie hashes to: any stable, well-spread hash of the ID will do for the simulation
    /// (nginx uses its own); FNV-1a over the cookie text.
    static func affinityHash(_ id: SessionID) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    /// SplitMix64's finaliser: request numbers to well-spread session numbers.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Counters summed over every instance.
    private struct Totals {
        var saves = 0, touches = 0, hits = 0, misses = 0, invalidations = 0

        init(_ instances: [Instance]) {
            for instance in instances {
                let store = instance.store.statistics
                let cache = instance.cache.statistics
                saves += store.saves
                touches += store.touches
                hits += cache.hits
                misses += cache.misses
                invalidations += cache.invalidations
            }
        }
    }

    /// `used_cpu_sys` + `used_cpu_user` of every node, in seconds.
    private func redisCPUSeconds(_ nodes: [String]) async throws -> Double {
        var total = 0.0
        for node in nodes {
            let client = RedisClient(configuration: try RedisConfiguration(url: node))
            let info = try await client.send("INFO", "cpu").string ?? ""
            await client.close()
            for line in info.split(whereSeparator: \.isNewline) {
                let parts = line.split(separator: ":")
                guard parts.count == 2, parts[0] == "used_cpu_sys" || parts[0] == "used_cpu_user" else { continue }
                total += Double(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return total
    }

    private func processCPUSeconds() -> Double { Measurement.cpuSeconds(children: false) }
}
