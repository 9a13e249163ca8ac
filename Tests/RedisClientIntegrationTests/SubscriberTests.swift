import Foundation
import RedisClient
import RedisTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct SubscriberTests {
    private func configuration(url: String, name: String) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.clientName = name
        return configuration
    }

    @Test func receivesMessagesOnChannelsAndPatterns() async throws {
        let url = try await RedisServer.sharedURL()
        let channel = uniquePrefix() + "events"
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: url))
        var events = subscriber.subscribe(to: [channel], patterns: [channel + ".*"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        try await withClient { (client: RedisClient) async throws in
            try await client.send("PUBLISH", channel, [0, 1, 2] as [UInt8])
            try await client.send("PUBLISH", channel + ".sub", "p")
        }
        #expect(await events.next() == .message(RedisPubSubMessage(channel: channel, payload: [0, 1, 2])))
        #expect(
            await events.next()
                == .message(RedisPubSubMessage(channel: channel + ".sub", pattern: channel + ".*", payload: [112])))
    }

    @Test func clientKillYieldsAGapThenResubscribesAndDeliversLaterMessages() async throws {
        let url = try await RedisServer.sharedURL()
        let name = "sub-\(UUID().uuidString.prefix(8))"
        let channel = uniquePrefix() + "events"
        let subscriber = RedisSubscriber(configuration: try configuration(url: url, name: name))
        var events = subscriber.subscribe(to: [channel]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        try await withClient { (client: RedisClient) async throws in
            let list = try await client.send("CLIENT", "LIST").string ?? ""
            let line = list.split(separator: "\n").first { $0.contains("name=\(name) ") }
            let id = line?.split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3)
            #expect(id != nil, "subscriber connection not found in CLIENT LIST")
            try await client.send("CLIENT", "KILL", "ID", String(id ?? "0"))

            guard case .disconnected(let error) = await events.next() else {
                Issue.record("expected a disconnected event")
                return
            }
            #expect(error.code == .connectionClosed)
            #expect(await events.next() == .resubscribed)
            try await client.send("PUBLISH", channel, "after")
        }
        #expect(await events.next() == .message(RedisPubSubMessage(channel: channel, payload: Array("after".utf8))))
    }

    @Test func restartOfRedisIsAGapWithBackoff() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))
        var events = RedisSubscriber(configuration: configuration).subscribe(to: ["c"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        try await server.restart(downtime: .milliseconds(600))
        guard case .disconnected = await events.next() else {
            Issue.record("expected a disconnected event")
            return
        }
        // One gap element per outage, however many reconnect attempts fail.
        #expect(await events.next() == .resubscribed)
    }

    @Test func silentPeerIsDetectedByPing() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let subscriber = RedisSubscriber(
            configuration: try RedisConfiguration(url: server.url),
            pingInterval: .milliseconds(100), pingTimeout: .milliseconds(300))
        var events = subscriber.subscribe(to: ["c"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        // A paused server keeps the socket open but answers nothing, like a peer behind a dead network path.
        try await withClient(url: server.url) { (client: RedisClient) async throws in
            try await client.send("CLIENT", "PAUSE", 1500, "ALL")
        }
        let started = ContinuousClock.now
        guard case .disconnected(let error) = await events.next() else {
            Issue.record("expected a disconnected event")
            return
        }
        #expect(error.code == .timeout)
        #expect(ContinuousClock.now - started < .milliseconds(1400))
    }

    @Test func cancellingTheConsumerStopsPromptly() async throws {
        let url = try await RedisServer.sharedURL()
        let consumer = Task {
            var count = 0
            for await _ in RedisSubscriber(configuration: try RedisConfiguration(url: url)).subscribe(to: ["quiet"]) {
                count += 1
            }
            return count
        }
        try await Task.sleep(for: .milliseconds(100))
        let cancelledAt = ContinuousClock.now
        consumer.cancel()
        #expect(try await consumer.value == 1)
        #expect(ContinuousClock.now - cancelledAt < .milliseconds(500))
    }

    @Test func trackingReportsWritesDeletesAndExpiriesUnderThePrefixesOnly() async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = uniquePrefix()
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(url: url))
        var events = subscriber.trackInvalidations(prefixes: [prefix + "s:"]).makeAsyncIterator()
        #expect(await events.next() == .tracking)
        let tracked = Array((prefix + "s:a").utf8)
        try await withClient { (client: RedisClient) async throws in
            try await client.send("SET", prefix + "untracked", "1")
            try await client.send("HSET", prefix + "s:a", "field", "1")
            #expect(await events.next() == .keys([tracked]))
            try await client.send("DEL", prefix + "s:a")
            #expect(await events.next() == .keys([tracked]))
            try await client.send("SET", prefix + "s:a", "1", "PX", 30)
            #expect(await events.next() == .keys([tracked]))
        }
        // Nobody touches the key again: the server's expiry is reported like any write.
        #expect(await events.next() == .keys([tracked]))
    }

    @Test func trackingReportsAFlushAndAGap() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))
        var events = RedisSubscriber(configuration: configuration).trackInvalidations(prefixes: ["k:"])
            .makeAsyncIterator()
        #expect(await events.next() == .tracking)
        try await withClient(url: server.url) { (client: RedisClient) async throws in
            try await client.send("FLUSHALL")
        }
        #expect(await events.next() == .all)
        try await server.restart(downtime: .milliseconds(300))
        guard case .disconnected = await events.next() else {
            Issue.record("expected a disconnected event")
            return
        }
        #expect(await events.next() == .tracking)
        try await withClient(url: server.url) { (client: RedisClient) async throws in
            try await client.send("SET", "k:after", "1")
        }
        #expect(await events.next() == .keys([Array("k:after".utf8)]))
    }
}
