import Foundation
import RedisTesting
import Testing

@testable import RedisClient

#if canImport(Glibc)
    import Glibc
#endif

/// The socket the connection owns, under hiredis' reader: TCP and Unix sockets, the options set on them, and the
/// failures a connect can meet, each with a message that says why.
@Suite(.timeLimit(.minutes(1))) struct TransportTests {
    @Test func aUnixSocketCarriesCommandsAndPipelines() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rsock-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("redis.sock").path
        let server = try await RedisServer.start(arguments: ["--unixsocket", path, "--unixsocketperm", "700"])
        defer { server.stop() }
        let client = RedisClient(configuration: try RedisConfiguration(url: "unix://\(path)"))
        #expect(try await client.send("PING") == .simpleString("PONG"))
        let replies = try await client.pipeline([
            RedisCommand("SET", "over-unix", "1"), RedisCommand("INCR", "over-unix"),
        ])
        #expect(replies == [.simpleString("OK"), .integer(2)])
        await client.close()
    }

    @Test func aTCPConnectionHasNoDelayAndKeepAlive() async throws {
        let configuration = try RedisConfiguration(url: try await RedisServer.sharedURL())
        let connection = try HiredisConnection(configuration: configuration)
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(connection.fileDescriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &size)
        #expect(value != 0, "TCP_NODELAY: a small command must not wait for Nagle")
        getsockopt(connection.fileDescriptor, SOL_SOCKET, SO_KEEPALIVE, &value, &size)
        #expect(value != 0, "keep-alive: a peer that vanished is found")
        connection.append(RedisCommand("ECHO", "through the reader").encoded)
        #expect(try connection.readReply() == .bulkString(Array("through the reader".utf8)))
    }

    @Test func anUnknownHostAndAClosedPortAreClearConnectFailures() async throws {
        var configuration = try RedisConfiguration(url: "redis://no-such-host.invalid:6379")
        configuration.connectTimeout = .milliseconds(500)
        #expect {
            _ = try HiredisConnection(configuration: configuration)
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .connectionFailed && error.message.hasPrefix("cannot connect: ")
        }
        let closed = try RedisConfiguration(url: "redis://127.0.0.1:\(try freePort())")
        #expect {
            _ = try HiredisConnection(configuration: closed)
        } throws: { error in
            (error as? RedisError)?.code == .connectionFailed
                && (error as? RedisError)?.message.contains("refused") == true
        }
    }

    @Test func aPeerThatAcceptsAndNeverAnswersFailsTheConnectWithinTheConnectTimeout() async throws {
        let (listener, port) = silentLoopbackListener()
        defer { close(listener) }
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(port)")
        configuration.connectTimeout = .milliseconds(300)
        let client = RedisClient(configuration: configuration)
        let started = ContinuousClock.now
        // The connect's own round trip (PING) finds it: the connection never counts as up.
        await #expect {
            try await client.send("PING")
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .connectionFailed
                && error.message.contains("no reply within the connect timeout (0.3 seconds) during the handshake")
        }
        #expect(ContinuousClock.now - started < .seconds(2))
        await client.close()
    }

    private func freePort() throws -> Int {
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        return Int(UInt16(bigEndian: bound.sin_port))
    }
}
