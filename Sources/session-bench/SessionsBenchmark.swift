import Foundation
import RedisClient
import RedisSession

/// `session-bench sessions`: session load and save from 64 concurrent tasks vs `redis-benchmark -c 64 -t get`, and
/// the same loads answered by a ``SessionCache`` with the time a destroy takes to reach it.
struct SessionsBenchmark {
    let options: BenchOptions

    func run() async throws -> BenchReport {
        try await options.withServer { url, host, port in
            let tool = RedisBenchmarkTool(host: host, port: port, tls: try RedisConfiguration(url: url).tls)
            let configuration = try options.clientConfiguration(url: url)
            let client = RedisClient(configuration: configuration)
            let store = RedisSessionStore(
                client: client, configuration: SessionStoreConfiguration(keyPrefix: "bench:"))
            try await client.send("SET", "key:__rand_int__", "xxx")

            let sessions = try await createBenchmarkSessions(store)
            _ = try await loads(store, sessions, tasks: 64, operations: 20_000)

            let (loadCommands, loadTrips) = try await costPerOperation(client) {
                _ = try await loads(store, sessions, tasks: 1, operations: 1000)
            }
            let (saveCommands, saveTrips) = try await costPerOperation(client) {
                _ = try await saves(store, sessions, tasks: 1, operations: 1000)
            }

            var reference: [Double] = []
            var load: [Double] = []
            var save: [Double] = []
            for _ in 0..<options.rounds {
                reference.append(try tool.requestsPerSecond(test: "get", clients: 64, requests: 200_000))
                load.append(try await loads(store, sessions, tasks: 64, operations: 200_000))
                save.append(try await saves(store, sessions, tasks: 64, operations: 100_000))
            }
            let cached = try await SessionCacheFigures.measure(
                configuration: configuration, writer: store, sessions: sessions, rounds: options.rounds)
            var encrypted: (load: [Double], save: [Double], reference: [Double])?
            if options.encryption {
                // The same sessions, every value sealed, measured in rounds of their own beside the reference.
                let sealedStore = RedisSessionStore(
                    client: client,
                    configuration: SessionStoreConfiguration(
                        keyPrefix: "bench-enc:", encryption: try Self.benchmarkEncryption()))
                let sealedSessions = try await createBenchmarkSessions(sealedStore)
                _ = try await loads(sealedStore, sealedSessions, tasks: 64, operations: 20_000)
                var figures: (load: [Double], save: [Double], reference: [Double]) = ([], [], [])
                for _ in 0..<options.rounds {
                    figures.reference.append(try tool.requestsPerSecond(test: "get", clients: 64, requests: 200_000))
                    figures.load.append(try await loads(sealedStore, sealedSessions, tasks: 64, operations: 200_000))
                    figures.save.append(try await saves(sealedStore, sealedSessions, tasks: 64, operations: 100_000))
                }
                encrypted = figures
            }
            await client.close()

            var report = BenchReport()
            if configuration.tls != nil { report.keyPrefix = "tls." }
            report.section(
                "sessions, 64 concurrent tasks, median of \(options.rounds) rounds, pool of \(configuration.poolSize)"
                    + (configuration.tls != nil ? ", TLS on both sides" : ""))
            report.rate("redis_benchmark.get.c64", "redis-benchmark -c 64 -t get", median(reference))
            report.rate("session.load.c64", "session load (read + throttled touch)", median(load))
            report.rate("session.save.c64", "session save (one changed attribute)", median(save))
            report.section("ratios (vs redis-benchmark -c 64 -t get)")
            report.ratio("ratio.load.c64", "load", median(load) / median(reference), target: ">= 1.5x")
            report.ratio("ratio.save.c64", "save", median(save) / median(reference), target: ">= 1.0x")
            report.section("with a SessionCache (another pool, following the same keys)")
            report.rate("session.cached_load.c64", "session load answered from memory", median(cached.loadRates))
            let lookupNanoseconds = median(cached.lookupNanoseconds)
            report.figure(
                "session_cache.lookup_ns", "the session cache's lookup (a hit), 1 task", lookupNanoseconds, unit: "ns",
                digits: 1)
            report.rate("session_cache.lookups_per_second.c1", "lookups per second, 1 task", 1e9 / lookupNanoseconds)
            report.rate(
                "session_cache.lookups_per_second.c2", "lookups per second, 2 tasks, different sessions",
                median(cached.concurrentLookupRates))
            report.ratio(
                "ratio.session_cache_lookups_c2_vs_c1", "2 tasks vs 1",
                median(cached.concurrentLookupRates) * lookupNanoseconds / 1e9)
            report.ratio(
                "ratio.cached_load.c64", "cached load vs redis-benchmark -c 64 -t get",
                median(cached.loadRates) / median(reference))
            report.figure(
                "revocation.p50_ms", "destroy on A until B's cache dropped the session, p50",
                percentile(cached.revocationMilliseconds, 0.50), unit: "ms", digits: 3)
            report.figure(
                "revocation.p99_ms", "the same, p99 (200 destroys)", percentile(cached.revocationMilliseconds, 0.99),
                unit: "ms", digits: 3)
            if let encrypted {
                let (seal, open) = try Self.encryptionNanoseconds()
                report.section("every value encrypted at rest (AES-256-GCM), the same sessions, rounds of their own")
                report.rate("redis_benchmark.get.c64.encrypted_rounds", "redis-benchmark -c 64 -t get", median(encrypted.reference))
                report.rate("session.encrypted_load.c64", "session load, values decrypted", median(encrypted.load))
                report.rate("session.encrypted_save.c64", "session save, the changed value encrypted", median(encrypted.save))
                report.ratio(
                    "ratio.encrypted_load.c64", "encrypted load vs redis-benchmark",
                    median(encrypted.load) / median(encrypted.reference), target: ">= 1.4x")
                report.ratio(
                    "ratio.encrypted_save.c64", "encrypted save vs redis-benchmark",
                    median(encrypted.save) / median(encrypted.reference), target: ">= 0.9x")
                report.figure("encryption.seal_ns", "encrypt one 64-byte value, 1 task", seal, unit: "ns", digits: 1)
                report.figure("encryption.open_ns", "decrypt one 64-byte value, 1 task", open, unit: "ns", digits: 1)
            }
            report.section("naming a session at rest (key layout v2)")
            report.figure(
                "sha256.ns", "parse a session ID and name it at rest (SHA-256 + base64url), per ID",
                Self.namingNanoseconds(), unit: "ns", digits: 1)
            report.section("cost per operation (server: INFO commandstats; round trips: client statistics)")
            report.figure("load.commands", "server commands per load (touch amortised)", loadCommands, unit: "")
            report.figure("load.round_trips", "awaited round trips per load", loadTrips, unit: "")
            report.figure("save.commands", "server commands per save (MULTI ... EXEC)", saveCommands, unit: "")
            report.figure("save.round_trips", "awaited round trips per save", saveTrips, unit: "")
            return report
        }
    }

    /// One random key: the figures do not depend on its bytes.
    static func benchmarkEncryption() throws -> SessionEncryption {
        var random = SystemRandomNumberGenerator()
        return try SessionEncryption(
            keys: [try SessionEncryption.Key(id: "bench", bytes: (0..<32).map { _ in random.next() })])
    }

    /// Nanoseconds to encrypt and to decrypt one 64-byte value (the AES-GCM call, the random nonce and the framing),
    /// best of 5 runs of 100,000.
    static func encryptionNanoseconds() throws -> (seal: Double, open: Double) {
        let encryption = try benchmarkEncryption()
        let value = [UInt8](repeating: 0x61, count: 64)
        let name = SessionID().storageName
        var sealBest = Double.infinity
        var openBest = Double.infinity
        var sealed: [UInt8] = []
        var checksum = 0
        for _ in 0..<5 {
            let clock = ContinuousClock()
            var failure: SessionError?
            let sealing = clock.measure {
                for _ in 0..<100_000 {
                    do throws(SessionError) {
                        sealed = try encryption.seal(value, field: "a:flash", storageName: name)
                    } catch {
                        failure = error
                    }
                }
            }
            let opening = clock.measure {
                for _ in 0..<100_000 {
                    do throws(SessionError) {
                        checksum &+= try encryption.open(sealed, field: "a:flash", storageName: name).count
                    } catch {
                        failure = error
                    }
                }
            }
            if let failure { throw failure }
            sealBest = min(sealBest, sealing.milliseconds * 1e6 / 100_000)
            openBest = min(openBest, opening.milliseconds * 1e6 / 100_000)
        }
        precondition(checksum > 0, "the values opened")  // keeps the loop from being optimised away
        return (sealBest, openBest)
    }

    /// What every load pays for the hashed layout: `SessionID(_:)` validates the cookie value and computes its
    /// storage name, the SHA-256 of the 43-character ID in base64url. Best of 5 runs of 200,000 IDs.
    static func namingNanoseconds() -> Double {
        let texts = (0..<1024).map { _ in SessionID().text }
        var best = Double.infinity
        var checksum = 0
        for _ in 0..<5 {
            let clock = ContinuousClock()
            let elapsed = clock.measure {
                for index in 0..<200_000 {
                    checksum &+= SessionID(texts[index & 1023])?.storageName.utf8.count ?? 0
                }
            }
            best = min(best, elapsed.milliseconds * 1e6 / 200_000)  // nanoseconds per parse
        }
        precondition(checksum > 0, "the IDs parsed")  // keeps the loop from being optimised away
        return best
    }

    private func loads(_ store: RedisSessionStore, _ ids: [SessionID], tasks: Int, operations: Int) async throws
        -> Double
    {
        try await throughput(tasks: tasks, operations: operations) { index in
            guard try await store.load(id: ids[index % ids.count]) != nil else {
                throw BenchOptions.Problem(description: "a benchmark session vanished")
            }
        }
    }

    private func saves(_ store: RedisSessionStore, _ ids: [SessionID], tasks: Int, operations: Int) async throws
        -> Double
    {
        // Each task saves its own session, so the figure is the store's cost, not a contest for one hash.
        var sessions: [Session] = []
        for index in 0..<tasks {
            guard let session = try await store.load(id: ids[index % ids.count]) else {
                throw BenchOptions.Problem(description: "a benchmark session vanished")
            }
            sessions.append(session)
        }
        let prepared = sessions
        return try await throughput(
            tasks: tasks, operations: operations,
            perTask: { task in
                var session = prepared[task]
                return { round in
                    session["flash"] = "saved \(round)"
                    try await store.save(&session)
                }
            })
    }

    /// Commands the server ran (counted by `INFO commandstats`, including those inside scripts and transactions)
    /// and requests the client awaited, per operation.
    private func costPerOperation(
        _ client: RedisClient, _ body: () async throws -> Void
    ) async throws -> (commands: Double, roundTrips: Double) {
        let before = try await commandStats(client)
        let requestsBefore = client.statistics.requests
        try await body()
        let requests = client.statistics.requests - requestsBefore
        let after = try await commandStats(client)
        // The INFO call itself is one command.
        return (Double(after.total - before.total - 1) / 1000, Double(requests) / 1000)
    }

    private func commandStats(_ client: RedisClient) async throws -> (total: Int, Void) {
        let text = try await client.send("INFO", "commandstats").string ?? ""
        var total = 0
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            guard let callsField = line.split(separator: ",").first(where: { $0.contains("calls=") }),
                let calls = Int(callsField.split(separator: "=").last ?? "")
            else { continue }
            total += calls
        }
        return (total, ())
    }
}

/// 1,000 signed-in sessions of 1,000 users, shaped like the web tier's: user, timezone, CSRF token, a flash message.
func createBenchmarkSessions(_ store: RedisSessionStore) async throws -> [SessionID] {
    var ids: [SessionID] = []
    for index in 0..<1000 {
        let session = try await store.create(
            userID: "user\(index)",
            attributes: ["timezone": "Europe/Paris", "csrf": String(repeating: "c", count: 43), "flash": ""])
        ids.append(session.id)
    }
    return ids
}

/// Operations per second with `tasks` concurrent tasks sharing `operations`.
func throughput(tasks: Int, operations: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws
    -> Double
{
    try await throughput(tasks: tasks, operations: operations, perTask: { _ in body })
}

/// Operations per second; `perTask` builds each task's operation (so a task can keep state between rounds).
func throughput(
    tasks: Int, operations: Int, perTask: @escaping @Sendable (Int) -> (Int) async throws -> Void
) async throws -> Double {
    let perTaskCount = operations / tasks
    let started = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for task in 0..<tasks {
            group.addTask {
                let operation = perTask(task)
                for round in 0..<perTaskCount { try await operation(task * perTaskCount + round) }
            }
        }
        try await group.waitForAll()
    }
    return Double(perTaskCount * tasks) / (ContinuousClock.now - started).seconds
}
