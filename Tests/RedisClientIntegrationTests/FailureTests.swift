import Foundation
@testable import RedisClient
import RedisTesting
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1))) struct FailureTests {
    @Test func commandTimeoutFailsClearlyAndTheClientRecovers() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        try await withClient(poolSize: 1, commandTimeout: .milliseconds(200), url: server.url) {
            (client: RedisClient) async throws in
            let started = ContinuousClock.now
            await #expect {
                try await client.send("DEBUG", "SLEEP", "2")
            } throws: { error in
                (error as? RedisError)?.code == .timeout
            }
            #expect(ContinuousClock.now - started < .milliseconds(1500), "the timeout, not the reply, ended the wait")
            // The timed-out connection was discarded; a new one answers (its late reply is never misread).
            #expect(await eventually { (try? await client.send("PING")) == .simpleString("PONG") })
            try await client.send("SET", "after-timeout", "ok")
            #expect(try await client.send("GET", "after-timeout").string == "ok")
        }
    }

    @Test func redisRestartMidLoadRecoversWithoutCrashing() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        try await withClient(poolSize: 2, url: server.url) { (client: RedisClient) async throws in
            let successes = Shared(0)
            let failures = Shared<[RedisError.Code: Int]>([:])
            let stop = Shared(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        while !stop.value {
                            do {
                                try await client.send("SET", "load:\(task)", task)
                                let value = try await client.send("GET", "load:\(task)")
                                #expect(value.int == task || value.isNull)
                                successes.update { $0 += 1 }
                            } catch let error as RedisError {
                                failures.update { $0[error.code, default: 0] += 1 }
                                try await Task.sleep(for: .milliseconds(5))
                            }
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                try await server.restart(downtime: .milliseconds(500))
                let beforeRecovery = successes.value
                let recovered = await eventually(timeout: .seconds(5)) {
                    successes.value > beforeRecovery + 100
                }
                stop.update { $0 = true }
                try await group.waitForAll()
                #expect(recovered, "the client did not recover after the restart")
            }
            let codes = failures.value
            #expect(!codes.isEmpty, "the restart should have failed some commands")
            let expected: Set<RedisError.Code> = [.connectionFailed, .connectionClosed]
            #expect(Set(codes.keys).isSubset(of: expected), "unexpected failure codes \(codes)")
            #expect(client.connectedCount >= 1)
        }
    }

    @Test func connectionRefusedIsAClearErrorInBoundedTime() async throws {
        let port = try RedisServer.freeLoopbackPort()
        try await withClient(url: "redis://127.0.0.1:\(port)") { (client: RedisClient) async throws in
            let started = ContinuousClock.now
            await #expect {
                try await client.send("PING")
            } throws: { error in
                guard let error = error as? RedisError else { return false }
                return error.code == .connectionFailed && error.message.contains("refused")
            }
            // While backing off, commands fail at once instead of waiting.
            await #expect(throws: RedisError.self) { try await client.send("PING") }
            #expect(ContinuousClock.now - started < .seconds(1))
        }
    }

    @Test func passwordsAndACLUsers() async throws {
        let server = try await RedisServer.start(arguments: ["--requirepass", "s3cret"])
        defer { server.stop() }
        let port = server.port
        try await withClient(url: "redis://:s3cret@127.0.0.1:\(port)/2") { (client: RedisClient) async throws in
            #expect(try await client.send("PING") == .simpleString("PONG"))
            try await client.send("ACL", "SETUSER", "app", "on", ">app-pass", "~*", "+@all")
            try await client.send("SET", "db-check", "2")
        }
        try await withClient(url: "redis://app:app-pass@127.0.0.1:\(port)/2") { (client: RedisClient) async throws in
            #expect(try await client.send("ACL", "WHOAMI").string == "app")
            #expect(try await client.send("GET", "db-check").string == "2")
        }
        for url in ["redis://:wrong@127.0.0.1:\(port)", "redis://app:wrong@127.0.0.1:\(port)"] {
            try await withClient(url: url) { (client: RedisClient) async throws in
                await #expect {
                    try await client.send("PING")
                } throws: { error in
                    guard let error = error as? RedisError else { return false }
                    return error.code == .authenticationFailed && error.message.contains("WRONGPASS")
                }
            }
        }
        try await withClient(url: "redis://127.0.0.1:\(port)") { (client: RedisClient) async throws in
            await #expect {
                try await client.send("PING")
            } throws: { error in
                (error as? RedisError)?.message.contains("NOAUTH") == true
            }
        }
    }

    @Test func clientNameIsSetOnEveryConnect() async throws {
        var configuration = try RedisConfiguration(url: try await RedisServer.sharedURL())
        configuration.clientName = "named-\(UUID().uuidString.prefix(6))"
        let client = RedisClient(configuration: configuration)
        #expect(try await client.send("CLIENT", "GETNAME").string == configuration.clientName)
        try await client.send("CLIENT", "KILL", "ID", try await client.send("CLIENT", "ID").int ?? -1)
        #expect(await eventually { (try? await client.send("CLIENT", "GETNAME"))?.string == configuration.clientName })
        await client.close()
    }

    @Test func cancellingAWaitingCallerResumesItPromptly() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        try await withClient(poolSize: 1, commandTimeout: .seconds(5), url: server.url) {
            (client: RedisClient) async throws in
            try await client.send("PING")
            let sleeper = Task { try await client.send("DEBUG", "SLEEP", "1") }
            #expect(await eventually { client.statistics.requests == 2 })
            try await Task.sleep(for: .milliseconds(20))
            let waiter = Task { try await client.send("GET", "never-mind") }
            #expect(await eventually { client.statistics.requests == 3 })
            let cancelledAt = ContinuousClock.now
            waiter.cancel()
            await #expect {
                try await waiter.value
            } throws: { error in
                (error as? RedisError)?.code == .cancelled
            }
            #expect(ContinuousClock.now - cancelledAt < .milliseconds(500), "the waiter did not wait for the sleeper")
            _ = try await sleeper.value
            // The connection stayed in step: the next command gets its own reply.
            #expect(try await client.send("ECHO", "in-step").string == "in-step")
        }
    }

    @Test func closedClientFailsCommandsAndLeavesNoThreads() async throws {
        let url = try await RedisServer.sharedURL()
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        try await client.send("PING")
        let subscriberThread = await { () async -> String in
            let subscription = RedisSubscriber(configuration: client.configuration).subscribe(to: ["t-\(UUID())"])
            var iterator = subscription.makeAsyncIterator()
            #expect(await iterator.next() == .subscribed)
            #expect(threadNames().contains(subscription.threadName))
            return subscription.threadName
        }()
        let prefix = client.threadNamePrefix
        #expect(threadNames().contains { $0.hasPrefix(prefix) })

        await client.close()
        await #expect {
            try await client.send("PING")
        } throws: { error in
            (error as? RedisError)?.code == .closed
        }
        // close() returns once each thread has released its connection; the thread itself ends a moment later.
        #expect(await eventually(timeout: .seconds(1)) { !threadNames().contains { $0.hasPrefix(prefix) } })
        // Dropping the subscription ends its thread.
        #expect(await eventually(timeout: .seconds(2)) { !threadNames().contains(subscriberThread) })
    }

    @Test func stoppedServerLeavesNoProcess() async throws {
        let server = try await RedisServer.start()
        #expect(server.isRunning)
        server.stop()
        #expect(!server.isRunning)
        #expect(!RedisServer.answersPing(port: server.port))
    }
}
