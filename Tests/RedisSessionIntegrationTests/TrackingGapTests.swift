import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// Holders mode's two silent losses under RESP2, forced with `CLIENT KILL` on a real server and a real cluster: the
/// trackers (the redirect target gets a new client ID) and the pool connections (Redis forgets what they read). After
/// either, a session loaded again and then changed outside the component is served by no instance within 100 ms, and
/// no connection is left redirecting to a client that is gone.
@Suite(.timeLimit(.minutes(1))) struct TrackingGapTests {
    enum Killed: String, CaseIterable, Sendable { case trackers, poolConnections }
    enum Where: String, CaseIterable, Sendable { case standalone, cluster }

    private let prefix = "g\(UUID().uuidString.prefix(8)):"

    @Test(arguments: Where.allCases, Killed.allCases)
    func noInstanceServesAChangeMadeAfterAGap(on topology: Where, killing killed: Killed) async throws {
        let url = topology == .cluster ? try await RedisCluster.shared().url : try await RedisServer.sharedURL()
        let nodes =
            topology == .cluster
            ? try await RedisCluster.shared().primaryPorts().map { "redis://127.0.0.1:\($0)" } : [url]
        let tag = UUID().uuidString.prefix(6)
        let a = try await SessionCacheTests.Instance.start(
            url: url, prefix: prefix, name: "gapA\(tag)", tracking: .holders)
        let b = try await SessionCacheTests.Instance.start(
            url: url, prefix: prefix, name: "gapB\(tag)", tracking: .holders)
        let created = try await a.store.create(userID: "gwen", attributes: ["n": "1"])
        for instance in [a, b] { _ = try await instance.store.load(id: created.id) }
        #expect(a.cache.statistics.count == 1 && b.cache.statistics.count == 1)
        // More sessions, loaded concurrently so that every pool connection tracks some: a connection that tracked
        // keys and then sits idle must re-point too, or Redis finds its redirect broken when those keys change.
        var others: [SessionID] = []
        for index in 0..<16 { others.append(try await a.store.create(userID: "other\(index)").id) }
        for instance in [a, b] {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in others { group.addTask { _ = try await instance.store.load(id: id) } }
                try await group.waitForAll()
            }
        }

        let resyncsBefore = a.cache.statistics.resyncs + b.cache.statistics.resyncs
        let names =
            killed == .trackers ? ["gapA\(tag)-cache", "gapB\(tag)-cache"] : ["gapA\(tag)", "gapB\(tag)"]
        var killedCount = 0
        for node in nodes { killedCount += try await Self.kill(named: names, on: node) }
        #expect(killedCount >= (killed == .trackers ? 2 * nodes.count : 2), "nothing was killed")
        if killed == .trackers {
            // Both trackers come back under new IDs, and the caches start again, empty.
            #expect(
                await eventually {
                    a.cache.statistics.resyncs + b.cache.statistics.resyncs >= resyncsBefore + 2
                        && a.cache.statistics.isTracking && b.cache.statistics.isTracking
                })
        } else {
            // The lost connections emptied both caches; nothing loaded through them is kept.
            #expect(await eventually { a.cache.statistics.count == 0 && b.cache.statistics.count == 0 })
        }

        // Loaded again (through a re-pointed connection), then cached.
        for instance in [a, b] {
            #expect(try await instance.store.load(id: created.id)?["n"] == "1")
            #expect(try await eventually { try await instance.store.load(id: created.id) != nil })
        }
        #expect(a.cache.statistics.count == 1 && b.cache.statistics.count == 1, "the reloaded session is not cached")
        // Give idle connections no help from traffic: a re-point must not wait for the next request.
        try await Task.sleep(for: .milliseconds(50))

        // Changed outside the component: every instance sees it within 100 ms.
        let outside = RedisClient(configuration: try RedisConfiguration(url: url))
        try await outside.send("HSET", SessionKeys(prefix: prefix).session(created.id), "a:n", "\"2\"")
        for id in others { try await outside.send("HSET", SessionKeys(prefix: prefix).session(id), "a:n", "\"2\"") }
        await outside.close()
        for instance in [a, b] {
            #expect(
                try await eventually(timeout: .milliseconds(100)) {
                    try await instance.store.load(id: created.id)?["n"] == "2"
                }, "an instance served the old session after the change")
        }

        // No connection redirects to a client that is gone.
        for node in nodes {
            let broken = try await Self.clientLines(on: node).filter { line in
                line.split(separator: " ").first { $0.hasPrefix("flags=") }?.contains("R") == true
            }
            #expect(broken.isEmpty, "broken tracking redirects: \(broken)")
        }
        await a.stop()
        await b.stop()
    }

    private static func clientLines(on node: String) async throws -> [Substring] {
        let admin = RedisClient(configuration: try RedisConfiguration(url: node))
        let list = try await admin.send("CLIENT", "LIST").string ?? ""
        await admin.close()
        return list.split(separator: "\n")
    }

    /// Kills every connection on `node` whose name is one of `names`; returns how many.
    private static func kill(named names: [String], on node: String) async throws -> Int {
        let admin = RedisClient(configuration: try RedisConfiguration(url: node))
        var count = 0
        for name in names {
            let list = try await admin.send("CLIENT", "LIST").string ?? ""
            for line in list.split(separator: "\n") where line.contains(" name=\(name) ") {
                guard let id = line.split(separator: " ").first(where: { $0.hasPrefix("id=") })?.dropFirst(3) else {
                    continue
                }
                count += try await admin.send("CLIENT", "KILL", "ID", String(id)).int ?? 0
            }
        }
        await admin.close()
        return count
    }
}
