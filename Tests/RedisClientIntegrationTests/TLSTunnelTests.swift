import Foundation
import RedisClient
import RedisTesting
import Testing

/// A redis-server that accepts TLS only, with certificates made at test time, reached through stunnel: the way a
/// deployment reaches a managed Redis, since hiredis 0.14.1 has no TLS.
@Suite(.timeLimit(.minutes(1))) struct TLSTunnelTests {
    private struct Fixture {
        let server: RedisServer
        let tunnel: TLSTunnel
        var url: String { "rediss://localhost:\(server.port)?tunnel=127.0.0.1:\(tunnel.port)" }
        func stop() {
            tunnel.stop()
            server.stop()
        }
    }

    private func start(trustingAnotherCA: Bool = false) async throws -> Fixture {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.startTLSOnly(certificates: certificates)
        let trusted = trustingAnotherCA ? try TLSCertificates.make() : certificates
        let tunnel = try await TLSTunnel.start(to: server.port, trusting: trusted.caPath)
        return Fixture(server: server, tunnel: tunnel)
    }

    @Test func commandsPipelinesAndSubscriptionsWorkThroughTheTunnel() async throws {
        let fixture = try await start()
        defer { fixture.stop() }
        let configuration = try RedisConfiguration(url: fixture.url)
        #expect(configuration.endpoint == .tcp(host: "localhost", port: fixture.server.port))
        try await withClient(url: fixture.url) { (client: RedisClient) async throws in
            try await client.send("SET", "tls:key", "over TLS")
            #expect(try await client.send("GET", "tls:key").string == "over TLS")
            // Many concurrent commands: the pipelined batches cross the tunnel intact and in order.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let reply = try await client.send("INCRBY", "tls:counter", index)
                        #expect(reply.int != nil)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.send("GET", "tls:counter").string == String((0..<200).reduce(0, +)))

            let subscriber = RedisSubscriber(configuration: configuration)
            var events = subscriber.subscribe(to: ["tls:events"]).makeAsyncIterator()
            #expect(await events.next() == .subscribed)
            try await client.send("PUBLISH", "tls:events", "hello")
            #expect(
                await events.next() == .message(RedisPubSubMessage(channel: "tls:events", payload: Array("hello".utf8)))
            )
        }
        #expect(fixture.tunnel.log.contains("Certificate accepted"), "the tunnel verified the server's certificate")
    }

    @Test func plaintextToTheTLSPortIsRefused() async throws {
        let fixture = try await start()
        defer { fixture.stop() }
        try await withClient(commandTimeout: .milliseconds(500), url: "redis://127.0.0.1:\(fixture.server.port)") {
            (client: RedisClient) async throws in
            await #expect {
                try await client.send("PING")
            } throws: { error in
                guard let error = error as? RedisError else { return false }
                return [.connectionFailed, .connectionClosed, .timeout].contains(error.code)
            }
        }
    }

    @Test func aTunnelThatDoesNotTrustTheServerFailsClosed() async throws {
        let fixture = try await start(trustingAnotherCA: true)
        defer { fixture.stop() }
        try await withClient(url: fixture.url) { (client: RedisClient) async throws in
            await #expect {
                try await client.send("PING")
            } throws: { error in
                (error as? RedisError)?.code == .connectionFailed
            }
        }
        #expect(fixture.tunnel.log.contains("certificate verify failed"))
    }

    @Test func theClientRecoversWhenTheTunnelRestarts() async throws {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.startTLSOnly(certificates: certificates)
        defer { server.stop() }
        let first = try await TLSTunnel.start(to: server.port, trusting: certificates.caPath)
        var configuration = try RedisConfiguration(
            url: "rediss://localhost:\(server.port)?tunnel=127.0.0.1:\(first.port)")
        configuration.commandTimeout = .milliseconds(500)
        let client = RedisClient(configuration: configuration)
        try await client.send("SET", "tls:restart", "kept")
        first.stop()
        await #expect(throws: RedisError.self) { try await client.send("GET", "tls:restart") }
        // A supervisor brings the tunnel back on the same port; the pool reconnects through it.
        let second = try await TLSTunnel.start(to: server.port, trusting: certificates.caPath, port: first.port)
        defer { second.stop() }
        #expect(await eventually { (try? await client.send("GET", "tls:restart").string) == "kept" })
        await client.close()
    }
}
