import Foundation
import RedisClient
import RedisSession
import RedisTesting

/// What the session cache buys and what it costs, measured beside `session-bench sessions`' own figures: loads
/// answered from memory at 64 tasks, and how long a destroy on one instance takes to stop another instance's cache
/// from serving the session (the window the cache adds to "log out everywhere").
struct SessionCacheFigures {
    /// Cached loads per second at 64 tasks, one per round.
    var loadRates: [Double] = []
    /// From the start of a destroy on instance A until instance B's cache has dropped the session, in ms.
    var revocationMilliseconds: [Double] = []
    /// The cache's own lookup (a hit), 1 task, in ns, one per round.
    var lookupNanoseconds: [Double] = []
    /// Lookups per second from 2 tasks looking up different sessions, one per round.
    var concurrentLookupRates: [Double] = []

    /// Measures on a second pool with its own cache (instance B); `writer` is instance A, without a cache.
    static func measure(
        configuration: RedisConfiguration, writer: RedisSessionStore, sessions: [SessionID], rounds: Int
    ) async throws -> SessionCacheFigures {
        let client = RedisClient(configuration: configuration)
        let reader = RedisSessionStore(
            client: client, configuration: writer.configuration, cache: SessionCache.Configuration())
        // The benchmark's own task, not the library's: the store's cache follows Redis beside the measurement, and is
        // cancelled when it ends.
        let following = Task { await reader.run() }
        defer { following.cancel() }
        guard let cache = reader.cache else {
            throw BenchOptions.Problem(description: "the store was made without its session cache")
        }
        guard await eventually({ cache.statistics.isTracking }) else {
            throw BenchOptions.Problem(description: "the session cache did not start tracking")
        }

        var figures = SessionCacheFigures()
        for id in sessions { _ = try await reader.load(id: id) }
        for _ in 0..<rounds {
            figures.loadRates.append(
                try await throughput(tasks: 64, operations: 200_000) { index in
                    guard try await reader.load(id: sessions[index % sessions.count]) != nil else {
                        throw BenchOptions.Problem(description: "a benchmark session vanished")
                    }
                })
        }

        // The lookup alone, as the events benchmark measures the settings cache's: 1 task, then 2 tasks on
        // different sessions (two requests of different users).
        let hot = Array(sessions.prefix(64))
        guard hot.count == 64 else { throw BenchOptions.Problem(description: "the benchmark needs 64 sessions") }
        let lookups = 4_000_000
        let halves = [Array(hot[..<32]), Array(hot[32...])]
        for _ in 0..<rounds {
            guard let one = await lookupRate(tasks: 1, lookups: lookups, keys: [hot], { cache.session($0) != nil }),
                let two = await lookupRate(tasks: 2, lookups: lookups, keys: halves, { cache.session($0) != nil })
            else {
                throw BenchOptions.Problem(description: "sessions fell out of the cache")
            }
            figures.lookupNanoseconds.append(1e9 / one)
            figures.concurrentLookupRates.append(two)
        }

        for _ in 0..<200 {
            let before = cache.statistics.invalidations
            let session = try await writer.create(userID: "revoked")
            // In broadcast mode the create comes back as a report too: wait for it before B caches the session. In
            // holders mode B hears only of sessions it read, so there is none.
            if cache.configuration.tracking == .broadcast { try await waitForReport(cache, after: before) }
            _ = try await reader.load(id: session.id)
            guard try await reader.load(id: session.id) != nil, cache.statistics.count > 0 else {
                throw BenchOptions.Problem(description: "instance B did not cache the session")
            }
            let reported = cache.statistics.invalidations
            let started = ContinuousClock.now
            try await writer.destroy(id: session.id)
            try await waitForReport(cache, after: reported)
            figures.revocationMilliseconds.append((ContinuousClock.now - started).seconds * 1000)
            guard try await reader.load(id: session.id) == nil else {
                throw BenchOptions.Problem(description: "instance B served a destroyed session")
            }
        }
        following.cancel()
        await following.value
        await client.close()
        return figures
    }

    /// Spins with `Task.yield()` rather than `eventually`'s sleeps: the wait is the figure, and a 2 ms sleep would
    /// swamp it.
    private static func waitForReport(_ cache: SessionCache, after count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(1)
        while cache.statistics.invalidations <= count {
            guard ContinuousClock.now < deadline else {
                throw BenchOptions.Problem(description: "no report from Redis within 1 s")
            }
            await Task.yield()
        }
    }
}
