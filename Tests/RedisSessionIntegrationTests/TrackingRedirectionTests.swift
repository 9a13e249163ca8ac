import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// A read that a cluster redirection resent went without its `CLIENT CACHING YES` (`MOVED` resends the command
/// alone, `ASK` puts `ASKING` before it), so Redis may not track it: holders mode must not keep it.
@Suite(.timeLimit(.minutes(1))) struct TrackingRedirectionTests {
    @Test func aSessionReadAfterItsSlotMovedIsNotServedStale() async throws {
        let cluster = try await RedisCluster.shared()
        let prefix = "m\(UUID().uuidString.prefix(8)):"
        let instance = try await SessionCacheTests.Instance.start(
            url: cluster.url, prefix: prefix, name: "mig\(UUID().uuidString.prefix(6))", tracking: .holders)
        let user = "mover\(UUID().uuidString.prefix(6))"
        let created = try await instance.store.create(userID: user, attributes: ["n": "1"])
        _ = try await instance.store.load(id: created.id)
        #expect(instance.cache.statistics.count == 1)

        // Move the session's slot to another primary by hand, keys and all, as a reshard does.
        let key = SessionKeys(prefix: prefix).session(created.id)
        let slot = HashSlot(key).value
        let source = try await cluster.owner(ofSlot: slot)
        let destination = try #require(try await cluster.primaryPorts().first { $0 != source })
        try await Self.migrate(slot: slot, from: source, to: destination, in: cluster)
        // The source reported the key's deletion: the entry went.
        #expect(await eventually { instance.cache.statistics.count == 0 })

        // The next load goes to the source by the old table, is moved, and is resent alone: served, not kept.
        #expect(try await instance.store.load(id: created.id)?["n"] == "1")
        // Loads after it read the new owner with tracking, and may be kept.
        #expect(
            try await eventually {
                try await instance.store.load(id: created.id) != nil && instance.cache.statistics.count == 1
            })

        // Changed outside the component, on the new owner: the instance sees it within 100 ms.
        let outside = RedisClient(configuration: try RedisConfiguration(url: cluster.url))
        try await outside.send("HSET", key, "a:n", "\"2\"")
        await outside.close()
        #expect(
            try await eventually(timeout: .milliseconds(100)) {
                try await instance.store.load(id: created.id)?["n"] == "2"
            }, "the instance served the session as it was before the change")
        await instance.stop()
    }

    /// `CLUSTER SETSLOT ... IMPORTING/MIGRATING`, `MIGRATE` of every key in the slot, then `SETSLOT ... NODE` on
    /// every primary.
    static func migrate(slot: Int, from source: Int, to destination: Int, in cluster: RedisCluster) async throws {
        let sourceID = try await cluster.nodeID(source)
        let destinationID = try await cluster.nodeID(destination)
        _ = try await cluster.ask(destination, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
        _ = try await cluster.ask(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", destinationID)
        while true {
            let keys = try await cluster.ask(source, "CLUSTER", "GETKEYSINSLOT", String(slot), "100").array ?? []
            let names = keys.compactMap(\.string)
            if names.isEmpty { break }
            var arguments = ["MIGRATE", "127.0.0.1", String(destination), "", "0", "5000", "KEYS"]
            arguments += names
            _ = try await cluster.ask(source, arguments)
        }
        for port in try await cluster.primaryPorts() + [destination] {
            _ = try await cluster.ask(port, "CLUSTER", "SETSLOT", String(slot), "NODE", destinationID)
        }
    }
}
