import RedisClient

/// `session-bench client`: GET throughput of ``RedisClient`` against `redis-benchmark` at the same concurrency.
struct ClientBenchmark {
    let options: BenchOptions

    func run() async throws -> BenchReport {
        try await options.withServer { url, host, port in
            let configuration = try options.clientConfiguration(url: url)
            let tool = RedisBenchmarkTool(host: host, port: port, tls: configuration.tls)
            var unpolledConfiguration = configuration
            unpolledConfiguration.busyPollWindow = .zero
            let client = RedisClient(configuration: configuration)
            let unpolled = RedisClient(configuration: unpolledConfiguration)
            defer {
                Task {
                    await client.close()
                    await unpolled.close()
                }
            }
            // redis-benchmark's GET reads this key; give it the same 3-byte value it would write.
            try await client.send("SET", "key:__rand_int__", "xxx")
            _ = try await getThroughput(client, tasks: 64, requests: 20_000)
            _ = try await getThroughput(unpolled, tasks: 1, requests: 5_000)

            var reference1: [Measurement] = []
            var reference64: [Double] = []
            var pipelined: [Double] = []
            var client1: [Measurement] = []
            var unpolled1: [Measurement] = []
            var client64: [Double] = []
            for _ in 0..<options.rounds {
                reference1.append(
                    try Measurement.ofChildren(operations: 50_000) {
                        try tool.requestsPerSecond(test: "get", clients: 1, requests: 50_000)
                    })
                reference64.append(try tool.requestsPerSecond(test: "get", clients: 64, requests: 200_000))
                pipelined.append(
                    try tool.requestsPerSecond(test: "get", clients: 64, requests: 1_000_000, pipeline: 16))
                client1.append(
                    try await Measurement.ofThisProcess(operations: 50_000) {
                        try await getThroughput(client, tasks: 1, requests: 50_000)
                    })
                unpolled1.append(
                    try await Measurement.ofThisProcess(operations: 50_000) {
                        try await getThroughput(unpolled, tasks: 1, requests: 50_000)
                    })
                client64.append(try await getThroughput(client, tasks: 64, requests: 200_000))
            }
            let polling = client.statistics
            await client.close()
            await unpolled.close()

            var report = BenchReport()
            let tls = configuration.tls != nil
            // Over TLS every figure is keyed tls.*, and both sides pay for it: redis-benchmark --tls on the same server.
            if tls { report.keyPrefix = "tls." }
            report.section(
                "GET, median of \(options.rounds) rounds, one private redis-server\(tls ? ", TLS on both sides" : "")")
            report.rate("redis_benchmark.get.c1", "redis-benchmark -c 1 -t get", median(reference1.map(\.rate)))
            report.rate("redis_benchmark.get.c64", "redis-benchmark -c 64 -t get", median(reference64))
            report.rate("redis_benchmark.get.c64_p16", "redis-benchmark -c 64 -P 16 -t get", median(pipelined))
            report.rate("client.get.c1", "RedisClient, 1 task", median(client1.map(\.rate)))
            report.rate(
                "client.get.c1_unpolled", "RedisClient, 1 task, busyPollWindow .zero", median(unpolled1.map(\.rate)))
            report.rate("client.get.c64", "RedisClient, 64 tasks, pool of \(configuration.poolSize)", median(client64))
            report.section("ratios (client / redis-benchmark at the same concurrency)")
            report.ratio(
                "ratio.get.c1", "1 task vs -c 1", median(client1.map(\.rate)) / median(reference1.map(\.rate)),
                target: ">= 0.8x")
            report.ratio(
                "ratio.get.c1_unpolled", "1 task, busyPollWindow .zero, vs -c 1",
                median(unpolled1.map(\.rate)) / median(reference1.map(\.rate)))
            report.ratio(
                "ratio.get.c64", "64 tasks vs -c 64", median(client64) / median(reference64),
                target: tls ? ">= 2.0x" : ">= 2.5x")
            report.ratio(
                "fraction.get.c64_of_p16", "64 tasks vs -c 64 -P 16 (pipelined ceiling)",
                median(client64) / median(pipelined))
            report.section("CPU time per GET at 1 task (user + system, all threads of the process)")
            report.figure(
                "cpu_us.get.c1.redis_benchmark", "redis-benchmark -c 1", median(reference1.map(\.cpuMicroseconds)),
                unit: "µs")
            report.figure(
                "cpu_us.get.c1", "RedisClient, 1 task", median(client1.map(\.cpuMicroseconds)), unit: "µs")
            report.figure(
                "cpu_us.get.c1_unpolled", "RedisClient, 1 task, busyPollWindow .zero",
                median(unpolled1.map(\.cpuMicroseconds)), unit: "µs")
            report.figure(
                "polling.hit_percent", "polled replies that arrived within the window",
                polling.polledBatches == 0 ? 0 : 100 * Double(polling.pollHits) / Double(polling.polledBatches),
                unit: "%", digits: 0)
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
