import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Records every command a server runs (`MONITOR`), including the commands a script runs and those inside
/// `MULTI`/`EXEC`: for tests that prove what an application really sent, rather than what it meant to send.
///
/// ```swift
/// let monitor = try await RedisMonitor.start(port: server.port)
/// try await store.save(&session)
/// let commands = await monitor.stop()
/// ```
///
/// It reads on a thread of its own, so no blocking socket call runs on the Swift cooperative pool.
public final class RedisMonitor: Sendable {
    /// One command as the server ran it.
    public struct Command: Sendable, Hashable {
        /// Who ran it: `lua` for a script's calls, else the client's address.
        public var client: String
        /// The command name and its arguments.
        public var arguments: [String]
        /// When the server ran it, by the server's wall clock (seconds since 1970, microsecond resolution).
        public var unixTime: Double = 0
    }

    private let fd: Int32
    private let lines = Mutex<[String]>([])
    private let confirmed = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    private init(fd: Int32) { self.fd = fd }

    /// Connects to a loopback server, sends `MONITOR`, and returns once the server confirmed it.
    ///
    /// - Throws: ``RedisServerError`` when the server cannot be reached or does not confirm within 5 s.
    public static func start(port: Int) async throws -> RedisMonitor {
        guard let fd = RedisServer.connectToLoopback(port: port) else {
            throw RedisServerError("cannot connect to port \(port): errno \(errno)")
        }
        let request = Array("MONITOR\r\n".utf8)
        guard write(fd, request, request.count) == request.count else {
            close(fd)
            throw RedisServerError("cannot send MONITOR to port \(port): errno \(errno)")
        }
        let monitor = RedisMonitor(fd: fd)
        Thread { monitor.readUntilClosed() }.start()
        guard await eventually(timeout: .seconds(5), { monitor.confirmed.load(ordering: .acquiring) }) else {
            _ = await monitor.stop()
            throw RedisServerError("the server on port \(port) did not confirm MONITOR")
        }
        return monitor
    }

    /// Stops recording and returns what the server ran, in order.
    public func stop() async -> [Command] {
        // Commands sent just before are already in the socket or about to be: give them a moment.
        try? await Task.sleep(for: .milliseconds(100))
        shutdown(fd, Int32(SHUT_RDWR))
        _ = await eventually(timeout: .seconds(5)) { finished.load(ordering: .acquiring) }
        close(fd)
        return lines.withLock { $0 }.compactMap(Self.parse)
    }

    private func readUntilClosed() {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            pending.append(contentsOf: buffer[..<count])
            var start = 0
            var index = 0
            var complete: [String] = []
            while index + 1 < pending.count {
                if pending[index] == 13 && pending[index + 1] == 10 {
                    complete.append(String(decoding: pending[start..<index], as: UTF8.self))
                    index += 2
                    start = index
                } else {
                    index += 1
                }
            }
            pending.removeFirst(start)
            for line in complete {
                if line == "+OK" && !confirmed.load(ordering: .relaxed) {
                    confirmed.store(true, ordering: .releasing)
                } else if line.hasPrefix("+") {
                    lines.withLock { $0.append(String(line.dropFirst())) }
                }
            }
        }
        finished.store(true, ordering: .releasing)
    }

    /// `1796010414.350360 [0 lua] "SET" "k" "a\"b"`: the client and the unquoted arguments.
    static func parse(_ line: String) -> Command? {
        guard let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]") else { return nil }
        let client = String(line[line.index(after: open)..<close].split(separator: " ").last ?? "")
        var arguments: [String] = []
        var bytes: [UInt8] = []
        var inside = false
        var iterator = line[line.index(after: close)...].utf8.makeIterator()
        while let byte = iterator.next() {
            if !inside {
                if byte == UInt8(ascii: "\"") { inside = true }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                arguments.append(String(decoding: bytes, as: UTF8.self))
                bytes = []
                inside = false
            case UInt8(ascii: "\\"):
                guard let escaped = iterator.next() else { return nil }
                switch escaped {
                case UInt8(ascii: "n"): bytes.append(10)
                case UInt8(ascii: "r"): bytes.append(13)
                case UInt8(ascii: "t"): bytes.append(9)
                case UInt8(ascii: "a"): bytes.append(7)
                case UInt8(ascii: "b"): bytes.append(8)
                case UInt8(ascii: "x"):
                    let hex = [iterator.next(), iterator.next()].compactMap { $0 }
                    bytes.append(UInt8(String(decoding: hex, as: UTF8.self), radix: 16) ?? 0)
                default: bytes.append(escaped)
                }
            default: bytes.append(byte)
            }
        }
        let time = Double(line[..<open].trimmingCharacters(in: .whitespaces)) ?? 0
        return Command(client: client, arguments: arguments, unixTime: time)
    }
}
