import RedisClient

/// `session-bench client`: GET throughput of ``RedisClient`` against `redis-benchmark` at the same concurrency.
struct ClientBenchmark {
    let options: BenchOptions

    func run() async throws -> BenchReport {
        try await options.withServer { url, host, port in
            let tool = RedisBenchmarkTool(host: host, port: port)
            let client = RedisClient(configuration: try RedisConfiguration(url: url))
            defer { Task { await client.close() } }
            // redis-benchmark's GET reads this key; give it the same 3-byte value it would write.
            try await client.send("SET", "key:__rand_int__", "xxx")
            _ = try await getThroughput(client, tasks: 64, requests: 20_000)

            var reference1: [Double] = []
            var reference64: [Double] = []
            var pipelined: [Double] = []
            var client1: [Double] = []
            var client64: [Double] = []
            for _ in 0..<options.rounds {
                reference1.append(try tool.requestsPerSecond(test: "get", clients: 1, requests: 50_000))
                reference64.append(try tool.requestsPerSecond(test: "get", clients: 64, requests: 200_000))
                pipelined.append(
                    try tool.requestsPerSecond(test: "get", clients: 64, requests: 1_000_000, pipeline: 16))
                client1.append(try await getThroughput(client, tasks: 1, requests: 50_000))
                client64.append(try await getThroughput(client, tasks: 64, requests: 200_000))
            }
            await client.close()

            var report = BenchReport()
            report.section("GET, median of \(options.rounds) rounds, one private redis-server")
            report.rate("redis_benchmark.get.c1", "redis-benchmark -c 1 -t get", median(reference1))
            report.rate("redis_benchmark.get.c64", "redis-benchmark -c 64 -t get", median(reference64))
            report.rate("redis_benchmark.get.c64_p16", "redis-benchmark -c 64 -P 16 -t get", median(pipelined))
            report.rate("client.get.c1", "RedisClient, 1 task", median(client1))
            report.rate("client.get.c64", "RedisClient, 64 tasks, pool of 2", median(client64))
            report.section("ratios (client / redis-benchmark at the same concurrency)")
            report.ratio("ratio.get.c1", "1 task vs -c 1", median(client1) / median(reference1), target: ">= 0.8x")
            report.ratio(
                "ratio.get.c64", "64 tasks vs -c 64", median(client64) / median(reference64), target: ">= 2.5x")
            report.ratio(
                "fraction.get.c64_of_p16", "64 tasks vs -c 64 -P 16 (pipelined ceiling)",
                median(client64) / median(pipelined))
            return report
        }
    }

    /// GETs per second with `tasks` concurrent tasks sharing `requests` GETs.
    private func getThroughput(_ client: RedisClient, tasks: Int, requests: Int) async throws -> Double {
        // Inline loops rather than the shared `throughput` helper: at one task the figure is pure latency, and an
        // extra async closure call per GET is measurable there.
        let perTask = requests / tasks
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    let command = RedisCommand("GET", "key:__rand_int__")
                    for _ in 0..<perTask { _ = try await client.send(command) }
                }
            }
            try await group.waitForAll()
        }
        return Double(perTask * tasks) / (ContinuousClock.now - started).seconds
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
