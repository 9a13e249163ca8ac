import Foundation
import RedisClient
import RedisTesting
import Synchronization
import Testing

/// Sentinel and Cluster where every process accepts TLS only: the sentinels, the data nodes, every cluster node, and
/// replication and the cluster bus between them. The client dials each node it learns of (a master a sentinel names,
/// a node `CLUSTER SLOTS` or `MOVED` announces) with TLS, verified against the configured name.
@Suite(.serialized, .timeLimit(.minutes(4))) struct TLSTopologyTests {
    @Test func aTLSClusterRoutesFollowsMovedAndAskToTLSNodesAndSurvivesAFailover() async throws {
        let certificates = try TLSCertificates.make()
        let cluster = try await RedisCluster.start(tls: certificates)
        defer { cluster.stop() }
        #expect(cluster.url.hasPrefix("rediss-cluster://"))
        var configuration = try RedisConfiguration(url: cluster.url)
        configuration.clientName = "tls-cluster-test"
        let client = RedisClient(configuration: configuration)
        let keys = (0..<600).map { "tls-cluster:\($0)" }
        let replies = try await client.pipeline(keys.map { RedisCommand("SET", $0, 0) })
        #expect(replies.count == keys.count && replies.allSatisfy { $0 == .simpleString("OK") })

        let subscriber = RedisSubscriber(configuration: configuration)
        var events = subscriber.subscribe(to: ["tls-cluster:events"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)

        // Under traffic: a fourth primary the client has never heard of takes slots (ASK while they migrate, then
        // MOVED to a node only the redirection names), then a replica takes over its shard.
        let traffic = KeyTraffic()
        let load = Task { await traffic.run(client, keys: keys, tasks: 6) }
        try await Task.sleep(for: .milliseconds(200))
        let primaries = try await cluster.primaryPorts()
        let newcomer = try await cluster.addPrimary()
        try await cluster.reshard(count: 200, from: primaries[0], to: newcomer.port)
        try await Task.sleep(for: .milliseconds(300))
        try await cluster.failover(replica: try await cluster.replica(of: primaries[1]))
        try await Task.sleep(for: .milliseconds(500))
        traffic.stop.store(true, ordering: .relaxed)
        await load.value
        let failures = traffic.failures.withLock { $0 }
        #expect(failures.isEmpty, "\(failures.count) failed, first: \(failures.prefix(3))")
        #expect(traffic.done.load(ordering: .relaxed) > 100)
        print("figure: TLS cluster, add-node + reshard of 200 slots + CLUSTER FAILOVER: \(traffic.done.load(ordering: .relaxed)) SET+GET pairs, \(failures.count) failed")

        // The newcomer holds keys now, and this client reached it, which only TLS can.
        let owned = try await cluster.keyOwned(by: newcomer.port)
        try await client.send("SET", owned, "on the newcomer")
        #expect(try await cluster.ask(newcomer.port, "GET", owned).string == "on the newcomer")
        let connections = try await cluster.ask(newcomer.port, "CLIENT", "LIST").string ?? ""
        #expect(connections.contains("name=tls-cluster-test"), "the client never connected to the new node")

        // Pub/sub over TLS hears a message published on a primary. The new table may have made a gap (what is
        // published during one is lost by design): once back, publish again.
        var heard = 0
        publishing: for _ in 0..<3 {
            let primary = try await cluster.primaryPorts()[0]
            _ = try await cluster.ask(primary, "PUBLISH", "tls-cluster:events", "from-\(primary)")
            while let next = await events.next() {
                switch next {
                case .message(let message) where message.channel == "tls-cluster:events":
                    heard += 1
                    break publishing
                case .disconnected:
                    while let again = await events.next(), again != .resubscribed {}
                    continue publishing
                default:
                    continue
                }
            }
        }
        #expect(heard == 1)
        await client.close()
    }

    @Test func aTLSSentinelSetIsFoundAndFollowedThroughAFailover() async throws {
        let certificates = try TLSCertificates.make()
        let set = try await SentinelSet.start(tls: certificates)
        defer { set.stop() }
        #expect(set.url.hasPrefix("rediss-sentinel://"))
        var configuration = try RedisConfiguration(url: set.url)
        configuration.commandTimeout = .milliseconds(500)
        let client = RedisClient(configuration: configuration)
        try await client.send("SET", "tls-sentinel:key", "before")
        let subscriber = RedisSubscriber(configuration: configuration)
        var events = subscriber.subscribe(to: ["tls-sentinel:events"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        var invalidations = subscriber.trackInvalidations(prefixes: ["tls-sentinel:"]).makeAsyncIterator()
        #expect(await invalidations.next() == .tracking)

        let traffic = KeyTraffic()
        let load = Task { await traffic.run(client, keys: (0..<50).map { "tls-sentinel:load:\($0)" }, tasks: 4) }
        try await Task.sleep(for: .milliseconds(200))
        let old = try await set.masterPort()
        let started = ContinuousClock.now
        let promoted = try await set.failover()
        #expect(promoted.port != old)
        // Writes succeed on the new master within a bound: the client followed the sentinels over TLS.
        let doneAtFailover = traffic.done.load(ordering: .relaxed)
        let resumed = await eventually(timeout: .seconds(10), interval: .milliseconds(20)) {
            traffic.done.load(ordering: .relaxed) > doneAtFailover + 50
        }
        #expect(resumed, "no writes succeeded after the failover")
        print("figure: TLS Sentinel failover, writes flowing again \(ContinuousClock.now - started) after SENTINEL FAILOVER")
        traffic.stop.store(true, ordering: .relaxed)
        await load.value
        #expect(try await client.send("GET", "tls-sentinel:key").string == "before")

        // The subscription moves to the new master: a gap, back, and a message published there arrives.
        guard case .disconnected = await events.next() else {
            Issue.record("expected a gap when the master changed")
            return
        }
        #expect(await events.next() == .resubscribed)
        _ = try await set.ask(promoted.port, "PUBLISH", "tls-sentinel:events", "after")
        #expect(
            await events.next()
                == .message(RedisPubSubMessage(channel: "tls-sentinel:events", payload: Array("after".utf8))))
        // Tracking runs on the new master too: a write there is reported.
        while let next = await invalidations.next(), next != .tracking {}
        try await client.send("SET", "tls-sentinel:key", "after")
        var reported = false
        while !reported, let next = await invalidations.next() {
            if case .keys(let keys) = next { reported = keys.contains(Array("tls-sentinel:key".utf8)) }
        }
        #expect(reported)
        await client.close()
    }
}
