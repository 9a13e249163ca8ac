import Foundation
import RedisClient
import RedisTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// TLS in the process against redis-servers that accept TLS only (`--port 0 --tls-port N`), with certificates made
/// at test time: the traffic of every kind, mutual TLS, and each way a TLS connection can fail, each with its reason.
@Suite(.timeLimit(.minutes(2))) struct TLSTests {
    private func configuration(_ url: String, connectTimeout: Duration = .milliseconds(500)) throws
        -> RedisConfiguration
    {
        var configuration = try RedisConfiguration(url: url)
        configuration.connectTimeout = connectTimeout
        configuration.reconnectBackoff = .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(100))
        return configuration
    }

    @Test func commandsPipelinesASubscriptionAndKeyTrackingRunOverTLS() async throws {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.start(tls: certificates)
        defer { server.stop() }
        #expect(server.url.hasPrefix("rediss://127.0.0.1:"))
        let configuration = try configuration(server.url)
        let client = RedisClient(configuration: configuration)
        let subscriber = RedisSubscriber(configuration: configuration)
        var events = subscriber.subscribe(to: ["tls:events"]).makeAsyncIterator()
        #expect(await events.next() == .subscribed)
        var invalidations = subscriber.trackInvalidations(prefixes: ["tls:tracked:"]).makeAsyncIterator()
        #expect(await invalidations.next() == .tracking)

        // Many concurrent commands: pipelined batches cross TLS records intact and in order.
        let values = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for index in 0..<500 {
                group.addTask {
                    try await client.send("SET", "tls:key:\(index)", "value-\(index)")
                    return (index, try await client.send("GET", "tls:key:\(index)").string)
                }
            }
            var values: [Int: String?] = [:]
            for try await (index, value) in group { values[index] = value }
            return values
        }
        #expect(values.count == 500 && values.allSatisfy { entry in entry.value == "value-\(entry.key)" })
        let replies = try await client.pipeline((0..<100).map { _ in RedisCommand("INCR", "tls:counter") })
        #expect(replies.last?.int == 100)
        // A reply larger than one TLS record (16 KiB) arrives whole.
        let large = [UInt8](repeating: 7, count: 200_000)
        try await client.send("SET", "tls:large", large)
        #expect(try await client.send("GET", "tls:large").bytes == large)

        try await client.send("PUBLISH", "tls:events", "hello")
        #expect(await events.next() == .message(RedisPubSubMessage(channel: "tls:events", payload: Array("hello".utf8))))
        try await client.send("SET", "tls:tracked:one", 1)
        var reported: [[UInt8]] = []
        while reported.isEmpty, let next = await invalidations.next() {
            if case .keys(let keys) = next { reported = keys }
        }
        #expect(reported == [Array("tls:tracked:one".utf8)])
        await client.close()
    }

    @Test func mutualTLSNeedsTheClientCertificateAndSaysSoWithoutIt() async throws {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.start(arguments: ["--tls-auth-clients", "yes"], tls: certificates)
        defer { server.stop() }
        let without = RedisClient(configuration: try configuration(server.url))
        await expectConnectFailure(without, containing: "asked for a client certificate and none is configured")
        await without.close()
        let with = RedisClient(
            configuration: try configuration(
                server.url + "&cert=\(certificates.clientCertificatePath)&key=\(certificates.clientKeyPath)"))
        #expect(try await with.send("PING").string == "PONG")
        await with.close()
    }

    @Test func anUntrustedChainFails() async throws {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.start(tls: certificates)
        defer { server.stop() }
        let stranger = try TLSCertificates.make()
        let client = RedisClient(configuration: try configuration("rediss://127.0.0.1:\(server.port)?\(stranger.urlQuery)"))
        await expectConnectFailure(client, containing: "certificate verify failed", "give its CA with ca=PATH")
        await client.close()
        // The system's trust store does not know a CA made a second ago either.
        let system = RedisClient(configuration: try configuration("rediss://127.0.0.1:\(server.port)"))
        await expectConnectFailure(system, containing: "certificate verify failed")
        await system.close()
    }

    @Test func aCertificateForAnotherNameFails() async throws {
        let certificates = try TLSCertificates.make(hosts: ["redis.example.com"])
        let server = try await RedisServer.start(tls: certificates)
        defer { server.stop() }
        let byAddress = RedisClient(configuration: try configuration(server.url))
        await expectConnectFailure(byAddress, containing: "IP address mismatch", "does not name '127.0.0.1'")
        await byAddress.close()
        let byName = RedisClient(configuration: try configuration(server.url + "&sni=other.example.com"))
        await expectConnectFailure(byName, containing: "hostname mismatch", "does not name 'other.example.com'")
        await byName.close()
        // The name it carries, sent as SNI and verified, while the connection goes to the address.
        let right = RedisClient(configuration: try configuration(server.url + "&sni=redis.example.com"))
        #expect(try await right.send("PING").string == "PONG")
        await right.close()
    }

    @Test func anExpiredCertificateFails() async throws {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.start(
            arguments: [
                "--tls-cert-file", certificates.expiredCertificatePath, "--tls-key-file", certificates.expiredKeyPath,
            ], tls: certificates)
        defer { server.stop() }
        let client = RedisClient(configuration: try configuration(server.url))
        await expectConnectFailure(client, containing: "certificate has expired")
        await client.close()
    }

    @Test func aPlaintextServerOnATLSURLFails() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let certificates = try TLSCertificates.make()
        let client = RedisClient(configuration: try configuration("rediss://127.0.0.1:\(server.port)?\(certificates.urlQuery)"))
        // A plaintext Redis reads the ClientHello as the start of a command and waits for the rest: the handshake
        // times out, and the message says what that usually means.
        await expectConnectFailure(client, containing: "TLS handshake timed out", "is this the server's TLS port?")
        await client.close()
    }

    @Test func aTLSServerOnAPlaintextURLFails() async throws {
        let certificates = try TLSCertificates.make()
        let server = try await RedisServer.start(tls: certificates)
        defer { server.stop() }
        let client = RedisClient(configuration: try configuration("redis://127.0.0.1:\(server.port)"))
        await expectConnectFailure(client, containing: "during the handshake", "use rediss://")
        await client.close()
    }

    @Test func aServerThatNeverAnswersTheHandshakeFailsWithinTheConnectTimeout() async throws {
        // The kernel completes TCP; nothing ever answers the ClientHello.
        let (listener, port) = silentLoopbackListener()
        defer { close(listener) }
        let certificates = try TLSCertificates.make()
        let client = RedisClient(
            configuration: try configuration(
                "rediss://127.0.0.1:\(port)?\(certificates.urlQuery)", connectTimeout: .milliseconds(300)))
        let started = ContinuousClock.now
        await expectConnectFailure(client, containing: "TLS handshake timed out after 0.3 seconds")
        #expect(ContinuousClock.now - started < .seconds(2))
        await client.close()
    }

    @Test func unverifiedTLSWorksOnlyWhenAskedForByName() async throws {
        let certificates = try TLSCertificates.make(hosts: ["redis.example.com"])
        let server = try await RedisServer.start(tls: certificates)
        defer { server.stop() }
        // verify=none: encrypted, nothing checked (and a warning on standard error at every connect).
        let client = RedisClient(configuration: try configuration("rediss://127.0.0.1:\(server.port)?verify=none"))
        #expect(try await client.send("PING").string == "PONG")
        await client.close()
        var configuration = try configuration("rediss://127.0.0.1:\(server.port)")
        #expect(configuration.tls?.verification == .full)
        configuration.tls?.verification = .insecureNoVerification
        let spelled = RedisClient(configuration: configuration)
        #expect(try await spelled.send("PING").string == "PONG")
        await spelled.close()
    }

    /// The first command fails with `connectionFailed` whose message has every part, within a few connect timeouts.
    private func expectConnectFailure(_ client: RedisClient, containing parts: String...) async {
        let started = ContinuousClock.now
        do {
            _ = try await client.send("PING")
            Issue.record("the command succeeded; expected a connect failure with \(parts)")
        } catch {
            #expect(error.code == .connectionFailed, "\(error)")
            for part in parts { #expect(error.message.contains(part), "\(error.message)") }
            print("TLS failure as reported: \(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(3))
    }
}
