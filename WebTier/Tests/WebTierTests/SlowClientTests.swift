import Foundation
import Hummingbird
import HummingbirdTesting
import RedisTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Found by the attack on the rig: partial requests and idle HTTP/1.0 connections were never timed out, so slow
/// clients could hold an instance's connections for ever.
@Suite(.timeLimit(.minutes(1))) struct SlowClientTests {
    let prefix = uniquePrefix()

    /// A raw TCP connection to the live server, to send what no HTTP client would.
    struct RawConnection: Sendable {
        let fd: Int32

        init(port: Int) throws {
            fd = try #require(RedisServer.connectToLoopback(port: port), "cannot connect to the test server")
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            _ = write(fd, bytes, bytes.count)
        }

        /// Reads until the server closes the connection (or 5 s pass); returns what it sent and how long it took.
        ///
        /// The blocking reads run on a thread of their own: on a 2-core machine the cooperative pool has two
        /// threads, and two tests blocked in `read` there would starve the server they wait for.
        func readUntilClosed() async -> (text: String, closed: Bool, elapsed: Duration) {
            await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: readUntilClosedBlocking()) }.start()
            }
        }

        private func readUntilClosedBlocking() -> (text: String, closed: Bool, elapsed: Duration) {
            let started = ContinuousClock.now
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count == 0 {
                    return (String(decoding: received, as: UTF8.self), true, ContinuousClock.now - started)
                }
                if count < 0 {
                    return (String(decoding: received, as: UTF8.self), false, ContinuousClock.now - started)
                }
                received += buffer[..<count]
            }
        }

        func close() { _ = Glibc.close(fd) }
    }

    @Test func partialHeadsAndIdleConnectionsAreClosedInTime() async throws {
        let app = try await makeApp(prefix: prefix, requestHeadTimeout: .milliseconds(400))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await waitUntilReady(client, prefix: prefix)

            // Slowloris: a head that never completes.
            let partial = try RawConnection(port: port)
            partial.send("GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            let slow = await partial.readUntilClosed()
            #expect(slow.closed && slow.text.isEmpty, "the partial request was closed without an answer")
            #expect(slow.elapsed < .seconds(2), "closed after \(slow.elapsed)")
            partial.close()

            // An HTTP/1.0 connection that never sends anything.
            let idle = try RawConnection(port: port)
            let silent = await idle.readUntilClosed()
            #expect(
                silent.closed && silent.elapsed < .seconds(2), "an idle connection was closed after \(silent.elapsed)")
            idle.close()

            // A kept-alive connection gets its answer, then is closed once idle past the deadline.
            let keptAlive = try RawConnection(port: port)
            keptAlive.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            let answered = await keptAlive.readUntilClosed()
            #expect(answered.text.hasPrefix("HTTP/1.1 200"), "\(answered.text.prefix(40))")
            #expect(answered.closed && answered.elapsed < .seconds(2))
            keptAlive.close()

            // A client that keeps up is not affected, even one that sends its head in pieces within the deadline.
            let steady = try RawConnection(port: port)
            steady.send("GET /healthz HTTP/1.0\r\n")
            try await Task.sleep(for: .milliseconds(100))
            steady.send("Host: test\r\n\r\n")
            #expect(await steady.readUntilClosed().text.hasPrefix("HTTP/1.1 200"))
            steady.close()
        }
    }
}
