import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// Writes that end sessions wait for a replica (`WAIT` in the same round trip), so a failover cannot bring a
/// logged-out session back; a master without replicas pays nothing for it.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ReplicaAcknowledgementTests {
    private func waitForLink(replica: RedisServer) async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: replica.url))
        let up = await eventually(timeout: .seconds(15), interval: .milliseconds(50)) {
            (try? await client.send("INFO", "replication").string?.contains("master_link_status:up")) == true
        }
        await client.close()
        try #require(up, "the replica's link did not come up")
    }

    @Test func aLogoutIsOnTheReplicaWhenItReturnsAndFailsWhenNoReplicaConfirms() async throws {
        let master = try await RedisServer.start(arguments: ["--repl-diskless-sync-delay", "0"])
        defer { master.stop() }
        let replica = try await RedisServer.start(arguments: ["--replicaof", "127.0.0.1", String(master.port)])
        defer { replica.stop() }
        try await waitForLink(replica: replica)
        let client = RedisClient(configuration: try RedisConfiguration(url: master.url))
        // The master counts a replica once it is online (after the initial sync), not when the link is merely up.
        let online = await eventually(timeout: .seconds(10), interval: .milliseconds(20)) {
            (try? await client.connectedReplicaCount()) == 1
        }
        try #require(online, "the master never listed its replica as online")
        // Right after its initial sync a replica can take a moment to acknowledge; wait until it does.
        let acknowledging = await eventually(timeout: .seconds(10), interval: .milliseconds(20)) {
            _ = try? await client.send("SET", "ack:warm-up", "1")
            return (try? await client.send("WAIT", 1, 100).int) == 1
        }
        try #require(acknowledging, "the replica never acknowledged a write")
        let replicaClient = RedisClient(configuration: try RedisConfiguration(url: replica.url))
        let prefix = "ack\(UUID().uuidString.prefix(6)):"
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        let keys = SessionKeys(prefix: prefix)

        // Confirmed: the moment destroyAll returns, the replica has no session left (no polling).
        let first = try await store.create(userID: "alice", attributes: [:], labels: [:])
        let second = try await store.create(userID: "alice", attributes: [:], labels: [:])
        #expect(try await store.destroyAll(userID: "alice") == 2)
        for session in [first, second] {
            #expect(try await replicaClient.send("EXISTS", keys.session(session.id)).int == 0)
        }
        let third = try await store.create(userID: "alice", attributes: [:], labels: [:])
        try await store.destroy(id: third.id)
        #expect(try await replicaClient.send("EXISTS", keys.session(third.id)).int == 0)

        // The replica stalls (frozen): no confirmation within 250 ms, so the logout reports it.
        _ = try await store.create(userID: "bob", attributes: [:], labels: [:])
        replica.suspend()
        let started = ContinuousClock.now
        await #expect {
            try await store.destroyAll(userID: "bob")
        } throws: { error in
            (error as? SessionError)?.code == .storeUnavailable
                && (error as? SessionError)?.message.contains("replicas confirmed") == true
        }
        #expect(ContinuousClock.now - started < .seconds(1), "the wait is bounded by its timeout")
        replica.resume()
        await client.close()
        await replicaClient.close()
    }

    @Test func aMasterWithoutReplicasDoesNotWait() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
        let store = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: "solo\(UUID().uuidString.prefix(6)):"))
        var elapsed: [Duration] = []
        for _ in 0..<5 {
            let session = try await store.create(userID: "carol", attributes: [:], labels: [:])
            let started = ContinuousClock.now
            try await store.destroy(id: session.id)
            elapsed.append(ContinuousClock.now - started)
        }
        // WAIT on a master without replicas would block for its whole 250 ms timeout.
        #expect(elapsed.allSatisfy { $0 < .milliseconds(200) }, "\(elapsed)")
        await client.close()
    }
}
