@testable import RedisClient
import Testing

/// The slot table, the redirections and the command splitting, with no server.
@Suite struct ClusterRoutingTests {
    typealias Endpoint = RedisConfiguration.Endpoint
    let a: Endpoint = .tcp(host: "10.0.0.1", port: 7000)
    let b: Endpoint = .tcp(host: "10.0.0.2", port: 7000)
    let c: Endpoint = .tcp(host: "10.0.0.3", port: 7000)

    @Test func aTableFromClusterSlotsOwnsEverySlotAndAReorderedCopyIsNoChange() {
        var topology = ClusterTopology(seeds: [a])
        #expect(!topology.coversEverySlot)
        let changed = topology.apply([(0...5460, a), (5461...10922, b), (10923...16383, c)])
        #expect(changed)
        #expect(topology.coversEverySlot)
        #expect(topology.owner(of: 0) == a)
        #expect(topology.owner(of: 12_739) == c)  // HashSlot("123456789")
        #expect(topology.generation == 1)
        let again = topology.apply([(10923...16383, c), (0...5460, a), (5461...10922, b)])
        #expect(!again)
        #expect(topology.generation == 1)
    }

    @Test func movedPatchesOneSlotAndAnUnknownNodeAsksForARefresh() {
        var topology = ClusterTopology(seeds: [a])
        _ = topology.apply([(0...8191, a), (8192...16383, b)])
        let result1 = topology.moved(slot: 100, to: b)
        #expect(result1 == .patched)
        #expect(topology.owner(of: 100) == b)
        #expect(topology.owner(of: 101) == a)
        let result2 = topology.moved(slot: 100, to: b)
        #expect(result2 == .unchanged)
        let result3 = topology.moved(slot: 200, to: c)
        #expect(result3 == .patchedToNewNode)
        #expect(topology.owner(of: 200) == c)
        #expect(topology.primaries.contains(c))
        #expect(topology.generation == 3)
    }

    @Test func clusterSlotsRepliesAreParsedAndAnEmptyHostIsTheNodeThatAnswered() throws {
        let reply: RedisValue = .array([
            .array([
                .integer(0), .integer(8191),
                .array([.bulkString(Array("10.0.0.1".utf8)), .integer(7000), .bulkString([])]),
            ]),
            .array([.integer(8192), .integer(16383), .array([.bulkString([]), .integer(7001)])]),
        ])
        let ranges = try #require(ClusterTopology.parseSlots(reply, answeredBy: .tcp(host: "10.0.0.9", port: 7001)))
        #expect(ranges.count == 2)
        #expect(ranges[0].primary == .tcp(host: "10.0.0.1", port: 7000))
        #expect(ranges[1].primary == .tcp(host: "10.0.0.9", port: 7001))
        #expect(ClusterTopology.parseSlots(.array([.integer(1)]), answeredBy: a) == nil)
    }

    @Test func redirectionsAreParsedAndOtherErrorsAreNot() {
        #expect(
            ClusterRedirection(.error("MOVED 3999 127.0.0.1:6381"))
                == .moved(slot: 3999, node: .tcp(host: "127.0.0.1", port: 6381)))
        #expect(
            ClusterRedirection(.error("ASK 3999 127.0.0.1:6381"))
                == .ask(slot: 3999, node: .tcp(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirection(.error("TRYAGAIN Multiple keys request during rehashing of slot")) == .retryLater)
        #expect(ClusterRedirection(.error("CLUSTERDOWN The cluster is down")) == .retryLater)
        #expect(ClusterRedirection(.error("ERR wrong number of arguments")) == nil)
        #expect(ClusterRedirection(.error("MOVED x y")) == nil)
        #expect(ClusterRedirection(.simpleString("OK")) == nil)
        // In a pipeline or a transaction, the first redirected reply counts.
        let transaction: RedisValue = .array([
            .simpleString("OK"), .error("MOVED 5 10.0.0.2:7000"), .error("EXECABORT Transaction discarded"),
        ])
        #expect(ClusterRouter.redirection(in: transaction, replyCount: 3) == .moved(slot: 5, node: b))
    }

    @Test func commandsAreCutIntoUnitsWithTheirSlots() throws {
        let payload =
            RedisCommand("SET", "{u}a", "1").encoded + RedisCommand("MULTI").encoded
            + RedisCommand("HSET", "{u}b", "f", "v").encoded + RedisCommand("PEXPIRE", "{u}b", 10).encoded
            + RedisCommand("EXEC").encoded + RedisCommand("PING").encoded
            + RedisCommand("EVALSHA", "abc", 2, "{u}a", "{u}c", "arg").encoded
        let parsed = try ClusterCommands(payload: payload)
        #expect(parsed.commands.map(\.name) == ["SET", "MULTI", "HSET", "PEXPIRE", "EXEC", "PING", "EVALSHA"])
        let slot = HashSlot("u").value
        #expect(parsed.units.map(\.commands) == [0..<1, 1..<5, 5..<6, 6..<7])
        #expect(parsed.units.map(\.slot) == [slot, slot, nil, slot])
        #expect(parsed.commands.last?.range.upperBound == payload.count)
    }

    @Test func theFastPathFindsTheSlotOfSingleKeyCommandsAndLeavesTheRestToTheFullCut() {
        let key = "rsess:s:{abc}digest"
        let slot = HashSlot(key).value
        let load = RedisCommand("HGETALL", key).encoded + RedisCommand("PTTL", key).encoded
        #expect(ClusterCommands.singleKeySlot(load) == slot)
        #expect(ClusterCommands.singleKeySlot(RedisCommand("SET", "k", "v", "PX", 5).encoded) == HashSlot("k").value)
        #expect(
            ClusterCommands.singleKeySlot(RedisCommand("GET", "a").encoded + RedisCommand("GET", "b").encoded) == nil)
        #expect(ClusterCommands.singleKeySlot(RedisCommand("MULTI").encoded) == nil)
        #expect(ClusterCommands.singleKeySlot(RedisCommand("EVALSHA", "x", 1, key).encoded) == nil)
        #expect(ClusterCommands.singleKeySlot(RedisCommand("DEL", key).encoded) == nil)
        #expect(ClusterCommands.singleKeySlot(RedisCommand("PING").encoded) == nil)
        #expect(ClusterCommands.singleKeySlot(Array("*2\r\n$3\r\nGET".utf8)) == nil)
        #expect(
            HashSlot.value(of: Array("xx{user1000}.following".utf8)[2...]) == HashSlot("{user1000}.followers").value)
    }

    @Test func keysInTwoSlotsAreRefused() {
        #expect(throws: RedisError.self) { try ClusterCommands(payload: RedisCommand("DEL", "a", "b").encoded) }
        #expect(throws: RedisError.self) {
            try ClusterCommands(payload: RedisCommand("EVAL", "s", 2, "a", "b").encoded)
        }
        #expect(throws: RedisError.self) {
            try ClusterCommands(
                payload: RedisCommand("MULTI").encoded + RedisCommand("SET", "a", "1").encoded
                    + RedisCommand("SET", "b", "1").encoded + RedisCommand("EXEC").encoded)
        }
        #expect(throws: RedisError.self) { try ClusterCommands(payload: Array("not resp".utf8)) }
    }

    @Test func eachMessageIsPassedOnOncePerPrimaryCopy() {
        var recent = RecentMessages(copies: 3)
        let message = RedisPubSubMessage(channel: "events", payload: [1, 2, 3])
        let result4 = recent.isFirstCopy(message)
        #expect(result4)
        let result5 = recent.isFirstCopy(message)
        #expect(!result5)
        let result6 = recent.isFirstCopy(message)
        #expect(!result6)
        // All three copies seen: the same payload published again is a new message.
        let result7 = recent.isFirstCopy(message)
        #expect(result7)
        let result8 = recent.isFirstCopy(RedisPubSubMessage(channel: "other", payload: [1, 2, 3]))
        #expect(result8)
    }

    @Test func parsesClusterURLs() throws {
        let configuration = try RedisConfiguration(url: "redis-cluster://:pw@10.0.0.1:7000,10.0.0.2?refresh_ms=1500")
        let cluster = try #require(configuration.cluster)
        #expect(cluster.seeds == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 6379)])
        #expect(cluster.refreshInterval == .milliseconds(1500))
        #expect(configuration.password == "pw")
        for bad in ["redis-cluster://10.0.0.1/2", "redis-cluster://a,,b", "redis-cluster://a?refresh_ms=0"] {
            #expect(throws: RedisError.self) { try RedisConfiguration(url: bad) }
        }
    }
}
