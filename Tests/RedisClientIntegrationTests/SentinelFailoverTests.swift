import Foundation
@testable import RedisClient
import RedisTesting
import Synchronization
import Testing

/// One master, one replica and three real sentinels, shared by the suite (a failover takes seconds): discovery,
/// `SENTINEL FAILOVER` and `kill -9` under load, and the subscriber following the master.
@Suite(.serialized, .timeLimit(.minutes(3))) struct SentinelFailoverTests {

    private func client(_ url: String, poolSize: Int = 2) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url)
        configuration.poolSize = poolSize
        configuration.commandTimeout = .milliseconds(500)
        configuration.clientName = "sentinel-test"
        return RedisClient(configuration: configuration)
    }

    /// Writes `INCR <key>:<task>` from several tasks until stopped, recording when each write succeeded.
    private final class WriteLoad: Sendable {
        let successes = Mutex<[ContinuousClock.Instant]>([])
        let failures = Mutex<[RedisError.Code: Int]>([:])
        let stop = Atomic<Bool>(false)

        func run(_ client: RedisClient, key: String, tasks: Int) async {
            await withTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        while !self.stop.load(ordering: .relaxed) {
                            do {
                                try await client.send("INCR", "\(key):\(task)")
                                self.successes.withLock { $0.append(.now) }
                            } catch let error as RedisError {
                                self.failures.withLock { $0[error.code, default: 0] += 1 }
                                try? await Task.sleep(for: .milliseconds(5))
                            } catch {
                                self.failures.withLock { $0[.unexpectedReply, default: 0] += 1 }
                            }
                        }
                    }
                }
            }
        }

        func firstSuccess(after instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
            successes.withLock { $0.first { $0 > instant } }
        }
    }

    @Test func discoversTheMasterSkippingADeadSentinelAndChecksItsRole() async throws {
        let set = try await SentinelSet.shared()
        let dead = try RedisServer.freeLoopbackPort()
        let url = set.url.replacingOccurrences(of: "redis-sentinel://", with: "redis-sentinel://127.0.0.1:\(dead),")
        let client = try client(url)
        try await client.send("SET", "sentinel:discovered", "yes")
        let master = try await set.master()
        #expect(try await set.ask(master.port, "GET", "sentinel:discovered").string == "yes")
        let clients = try await set.ask(master.port, "CLIENT", "LIST").string ?? ""
        #expect(clients.contains("name=sentinel-test"), "the pool is connected to the master the sentinels name")
        await client.close()
    }

    @Test func aManualFailoverMovesEveryWriteWithin100msOfTheFirstAnnouncement() async throws {
        let set = try await SentinelSet.shared()
        try await set.waitUntilReplicated()
        try await set.waitUntilSentinelsAgree()
        let client = try client(set.url, poolSize: 2)
        try await client.send("PING")
        let monitor = try #require(SentinelMonitor.acquire(for: client.configuration))
        defer { monitor.release() }
        let changesBefore = monitor.changes.withLock { $0.count }
        let oldMaster = try await set.master()
        let recorder = try await RedisMonitor.start(port: oldMaster.port)
        let key = "sentinel:manual:\(UUID().uuidString.prefix(6))"
        let load = WriteLoad()
        let loadTask = Task { await load.run(client, key: key, tasks: 8) }
        try await Task.sleep(for: .milliseconds(300))

        let startedWall = Date().timeIntervalSince1970
        let newMaster = try await set.failover()
        #expect(newMaster.port != oldMaster.port)
        // Keep writing until this process has moved and writes succeed on the new master.
        let moved = await eventually(timeout: .seconds(20), interval: .milliseconds(20)) {
            monitor.changes.withLock { $0.count } > changesBefore
        }
        #expect(moved, "the monitor never learned of the switch")
        try await Task.sleep(for: .seconds(1))
        load.stop.store(true, ordering: .relaxed)
        await loadTask.value
        let commands = await recorder.stop()

        let learned = try #require(monitor.changes.withLock { $0.dropFirst(changesBefore).first })
        let late = commands.filter { $0.arguments.first == "INCR" && $0.unixTime > learned.unixTime + 0.1 }
        #expect(late.isEmpty, "\(late.count) writes reached the demoted master more than 100 ms after the switch")
        #expect(learned.master == .tcp(host: "127.0.0.1", port: newMaster.port))
        let learnedAfter = String(format: "%.2f", learned.unixTime - startedWall)
        print(
            "figure: SENTINEL FAILOVER under 8 writing tasks: switch learned \(learnedAfter) s after the command; "
                + "writes on the old master after it: \(late.count); failures by kind \(load.failures.withLock { $0 })")
        // Every value the writers saw acknowledged is on the new master (nothing was sent to the old one late).
        #expect(try await set.ask(newMaster.port, "EXISTS", "\(key):0").int == 1)
        await client.close()
    }

    @Test func killingTheMasterRecoversWithin1sOfTheAnnouncementAndTheOldMasterRejoinsAsAReplica() async throws {
        let set = try await SentinelSet.shared()
        try await set.waitUntilReplicated()
        try await set.waitUntilSentinelsAgree()
        let client = try client(set.url, poolSize: 2)
        try await client.send("PING")
        let monitor = try #require(SentinelMonitor.acquire(for: client.configuration))
        defer { monitor.release() }
        let changesBefore = monitor.changes.withLock { $0.count }
        let load = WriteLoad()
        let key = "sentinel:kill:\(UUID().uuidString.prefix(6))"
        let loadTask = Task { await load.run(client, key: key, tasks: 8) }
        try await Task.sleep(for: .milliseconds(300))

        let oldMaster = try await set.master()
        let killed = ContinuousClock.now
        oldMaster.crash()
        let newMaster = try await set.waitForNewMaster(other: oldMaster.port)
        let moved = await eventually(timeout: .seconds(20), interval: .milliseconds(10)) {
            monitor.changes.withLock { $0.count } > changesBefore
        }
        #expect(moved)
        let learnedAt = ContinuousClock.now
        let recovered = await eventually(timeout: .seconds(5), interval: .milliseconds(10)) {
            load.firstSuccess(after: learnedAt) != nil
        }
        load.stop.store(true, ordering: .relaxed)
        await loadTask.value
        let firstSuccess = try #require(load.firstSuccess(after: killed + .milliseconds(50)))
        #expect(recovered)
        // The first success after the kill comes at most 1 s after this process learned of the switch.
        #expect(firstSuccess - learnedAt < .seconds(1))
        let failures = load.failures.withLock { $0 }
        #expect(
            Set(failures.keys).isSubset(of: [.connectionFailed, .connectionClosed, .timeout, .notMaster]),
            "every failure is a lost-connection kind: \(failures)")
        print(
            "figure: kill -9 of the master under 8 writing tasks: first success \(String(format: "%.2f", (firstSuccess - killed).seconds)) s after the kill; failures by kind \(failures)"
        )

        // The old master returns as a replica of the new one, and the set heals.
        let rejoined = try await set.restartAsReplica(oldMaster)
        try await set.waitUntilReplicated()
        #expect(try await set.ask(rejoined.port, "ROLE").array?.first?.string == "slave")
        #expect(try await set.masterPort() == newMaster.port)
        try await client.send("SET", "sentinel:after-rejoin", "ok")
        await client.close()
    }

    @Test func aSubscriberFollowsTheMasterThroughAFailover() async throws {
        let set = try await SentinelSet.shared()
        try await set.waitUntilReplicated()
        try await set.waitUntilSentinelsAgree()
        let configuration = try RedisConfiguration(url: set.url)
        let subscriber = RedisSubscriber(configuration: configuration)
        var events = subscriber.subscribe(to: ["sentinel:events"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        let newMaster = try await set.failover()
        // A master change is a gap: the subscriber says so, then it is subscribed on the new master.
        guard case .disconnected = await events.next() else {
            Issue.record("expected a gap at the master change")
            return
        }
        #expect(await events.next() == .resubscribed)
        let clients = try await set.ask(newMaster.port, "CLIENT", "LIST").string ?? ""
        #expect(clients.contains("cmd=subscribe") || clients.contains("sub=1"))
        _ = try await set.ask(newMaster.port, "PUBLISH", "sentinel:events", "after")
        #expect(
            await events.next()
                == .message(RedisPubSubMessage(channel: "sentinel:events", payload: Array("after".utf8))))
    }
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
