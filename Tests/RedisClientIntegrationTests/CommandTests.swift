import Foundation
import RedisClient
import RedisTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct CommandTests {
    @Test func repliesOfEveryType() async throws {
        try await withClient { (client: RedisClient) async throws in
            let key = uniquePrefix() + "k"
            #expect(try await client.send("SET", key, "v") == .simpleString("OK"))
            #expect(try await client.send("GET", key) == .bulkString(Array("v".utf8)))
            #expect(try await client.send("GET", key + "missing") == .null)
            #expect(try await client.send("INCRBY", key + "n", 41) == .integer(41))
            #expect(try await client.send("RPUSH", key + "l", "a", "b") == .integer(2))
            #expect(
                try await client.send("LRANGE", key + "l", 0, -1)
                    == .array([.bulkString(Array("a".utf8)), .bulkString(Array("b".utf8))]))
            await #expect {
                try await client.send("INCR", key)
            } throws: { error in
                guard let error = error as? RedisError else { return false }
                return error.code == .serverError && error.message.hasPrefix("ERR") && error.context == "INCR"
            }
            await #expect(throws: RedisError.self) { try await client.send(RedisCommand(arguments: [])) }
            // The connection is still usable after an error reply.
            #expect(try await client.send("PING") == .simpleString("PONG"))
        }
    }

    @Test func aLoneCallersRepliesArePolledForUnlessTheWindowIsZero() async throws {
        let url = try await RedisServer.sharedURL()
        for window in [Duration.microseconds(200), .zero] {
            var configuration = try RedisConfiguration(url: url)
            configuration.busyPollWindow = window
            let client = RedisClient(configuration: configuration)
            let key = uniquePrefix() + "polled"
            try await client.send("SET", key, "v")
            for _ in 0..<200 { #expect(try await client.send("GET", key) == .bulkString(Array("v".utf8))) }
            let statistics = client.statistics
            await client.close()
            if window == .zero {
                #expect(statistics.polledBatches == 0 && statistics.pollHits == 0)
            } else {
                // Loopback answers well within 200 µs; a preempted thread may miss a few.
                #expect(statistics.polledBatches > 100)
                #expect(statistics.pollHits > 50)
            }
        }
    }

    @Test func slowRepliesStopThePolling() async throws {
        try await withClient(poolSize: 1) { (client: RedisClient) async throws in
            // Each reply takes 2 ms, far past the 50 µs window: polling would burn CPU for nothing.
            for _ in 0..<100 { try await client.send("DEBUG", "SLEEP", "0.002") }
            let statistics = client.statistics
            #expect(statistics.pollHits == 0)
            // The first 4 while the connection is new, then one probe in 64 batches.
            #expect(statistics.polledBatches <= 6)
        }
    }

    @Test func binaryDataWithNULBytesRoundTrips() async throws {
        try await withClient { (client: RedisClient) async throws in
            let key = Array(uniquePrefix().utf8) + [0, 1, 0]
            let value: [UInt8] = (0..<256).map(UInt8.init) + [0, 0, 13, 10, 0]
            try await client.send("SET", key, value)
            #expect(try await client.send("GET", key).bytes == value)
            #expect(try await client.send("STRLEN", key) == .integer(Int64(value.count)))
        }
    }

    @Test func largeValuesOfOneMebibyte() async throws {
        try await withClient { (client: RedisClient) async throws in
            let key = uniquePrefix() + "big"
            var generator = SystemRandomNumberGenerator()
            let value = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            try await client.send("SET", key, value)
            let read = try await client.send("GET", key)
            #expect(read.bytes == value)
            try await client.send("DEL", key)
        }
    }

    @Test func sixtyFourConcurrentTasksEachReadTheirOwnValue() async throws {
        try await withClient(poolSize: 2) { (client: RedisClient) async throws in
            let prefix = uniquePrefix()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<64 {
                    group.addTask {
                        for round in 0..<50 {
                            let key = "\(prefix)\(task)"
                            let value = "task-\(task)-round-\(round)"
                            try await client.send("SET", key, value)
                            let read = try await client.send("GET", key)
                            #expect(read.string == value)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func pipelinesKeepOrderAndReportErrorsInPlace() async throws {
        try await withClient { (client: RedisClient) async throws in
            let key = uniquePrefix() + "p"
            let replies = try await client.pipeline([
                RedisCommand("SET", key, "1"),
                RedisCommand("INCR", key),
                RedisCommand("LPUSH", key, "x"),
                RedisCommand("GET", key),
            ])
            #expect(replies.count == 4)
            #expect(replies[0] == .simpleString("OK"))
            #expect(replies[1] == .integer(2))
            guard case .error(let message) = replies[2] else {
                Issue.record("expected WRONGTYPE, got \(replies[2])")
                return
            }
            #expect(message.hasPrefix("WRONGTYPE"))
            #expect(replies[3].string == "2")
            #expect(try await client.pipeline([]) == [])
            // A pipeline of one command is one reply, even when that reply is an array.
            try await client.send("RPUSH", key + "l", "a", "b")
            let single = try await client.pipeline([RedisCommand("LRANGE", key + "l", 0, -1)])
            #expect(single == [.array([.bulkString(Array("a".utf8)), .bulkString(Array("b".utf8))])])
        }
    }

    @Test func transactionsRunAtomicallyAndRefuseSyntaxErrors() async throws {
        try await withClient { (client: RedisClient) async throws in
            let key = uniquePrefix() + "t"
            let results = try await client.transaction([
                RedisCommand("SET", key, "10"), RedisCommand("INCRBY", key, 5), RedisCommand("GET", key),
            ])
            #expect(results == [.simpleString("OK"), .integer(15), .bulkString(Array("15".utf8))])
            await #expect {
                try await client.transaction([RedisCommand("SET", key, "99"), RedisCommand("NOSUCHCOMMAND")])
            } throws: { error in
                (error as? RedisError)?.message.contains("EXECABORT") == true
            }
            #expect(try await client.send("GET", key).string == "15")
        }
    }

    @Test func scriptsReloadTransparentlyAfterScriptFlush() async throws {
        try await withClient { (client: RedisClient) async throws in
            let key = uniquePrefix() + "s"
            let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('STRLEN', KEYS[1])")
            #expect(try await client.evaluate(script, keys: [key], arguments: ["hello"]) == .integer(5))
            try await client.send("SCRIPT", "FLUSH")
            #expect(try await client.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(0)]))
            #expect(try await client.evaluate(script, keys: [key], arguments: ["hello!"]) == .integer(6))
            #expect(try await client.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]))
            try await client.load(script)
            let failing = RedisScript("return redis.error_reply('custom failure')")
            await #expect(throws: RedisError.self) { try await client.evaluate(failing) }
        }
    }
}
