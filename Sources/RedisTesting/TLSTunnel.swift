import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A local TLS tunnel in client mode: stunnel from Debian's `stunnel4` package, accepting plaintext on a free
/// loopback port and speaking TLS to a server whose certificate it verifies against a CA.
///
/// This is what a deployment runs next to each instance (a sidecar), because hiredis 0.14.1 has no TLS:
///
/// ```swift
/// let certificates = try TLSCertificates.make()
/// let server = try await RedisServer.startTLSOnly(certificates: certificates)
/// let tunnel = try await TLSTunnel.start(to: server.port, trusting: certificates.caPath)
/// let url = "rediss://localhost:\(server.port)?tunnel=127.0.0.1:\(tunnel.port)"
/// ```
public final class TLSTunnel: Sendable {
    /// The loopback port the tunnel accepts plaintext on.
    public let port: Int
    /// stunnel's log: one line per connection, with the certificate verdict.
    public let logPath: String
    private let pid: Mutex<pid_t?>

    private init(port: Int, logPath: String, pid: pid_t) {
        self.port = port
        self.logPath = logPath
        self.pid = Mutex(pid)
    }

    /// Starts stunnel and returns once its port accepts connections.
    ///
    /// - Parameters:
    ///   - serverPort: The TLS port on `127.0.0.1`.
    ///   - caPath: The CA the server's certificate must chain to.
    ///   - host: The name the certificate must carry (`checkHost`).
    ///   - port: The loopback port to accept on, or `nil` for a free one (a restarted tunnel keeps its port).
    /// - Throws: ``RedisServerError`` when stunnel is not installed or does not come up within 10 s.
    public static func start(
        to serverPort: Int, trusting caPath: String, host: String = "localhost", port: Int? = nil
    ) async throws -> TLSTunnel {
        guard let executable = RedisServer.findExecutable("stunnel4") ?? RedisServer.findExecutable("stunnel") else {
            throw RedisServerError("stunnel is not installed (apt-get install stunnel4)")
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("stunnel-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try port ?? RedisServer.freeLoopbackPort()
        let logPath = directory.appendingPathComponent("stunnel.log").path
        let configuration = """
            foreground = yes
            pid =
            syslog = no
            output = \(logPath)
            [redis]
            client = yes
            accept = 127.0.0.1:\(port)
            connect = 127.0.0.1:\(serverPort)
            CAfile = \(caPath)
            verifyChain = yes
            checkHost = \(host)
            """
        let configurationPath = directory.appendingPathComponent("stunnel.conf").path
        try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        let child = try RedisServer.spawn([executable, configurationPath], stderrPath: logPath)
        let tunnel = TLSTunnel(port: port, logPath: logPath, pid: child)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if RedisServer.accepts(port: port) { return tunnel }
            if waitpid(child, nil, WNOHANG) == child {
                tunnel.pid.withLock { $0 = nil }
                throw RedisServerError("stunnel exited at start: \(tunnel.log.suffix(400))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        tunnel.stop()
        throw RedisServerError("stunnel on port \(port) did not accept connections within 10 s")
    }

    /// What stunnel logged so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Stops the tunnel and waits for it to exit.
    public func stop() {
        let running = pid.withLock { pid -> pid_t? in
            defer { pid = nil }
            return pid
        }
        if let running { RedisServer.terminate(running) }
    }

    deinit { stop() }
}
