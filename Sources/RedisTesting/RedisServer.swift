import Foundation
public import RedisClient
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private `redis-server` on a free loopback port, for tests, benchmarks and demos.
///
/// ```swift
/// let server = try await RedisServer.start()
/// defer { server.stop() }
/// let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
/// ```
///
/// The server persists nothing (`--save ""`, no AOF), allows `DEBUG` from loopback, and writes its log to a
/// temporary folder. Every server started is also stopped when the process exits normally, so a test run leaves
/// no `redis-server` behind.
public final class RedisServer: Sendable {
    /// The loopback port the server listens on.
    public let port: Int
    /// `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<port>?ca=<the CA>` for a TLS-only server.
    public var url: String {
        if let certificates { return "rediss://127.0.0.1:\(port)?\(certificates.urlQuery)" }
        return "redis://127.0.0.1:\(port)"
    }
    /// The extra command-line arguments it was started with (for example `["--requirepass", "secret"]`).
    public let extraArguments: [String]
    /// The folder holding its log (`redis.log`).
    public var directoryPath: String { directory.path }
    /// The certificates of a server that accepts TLS only (``start(port:arguments:tls:server:)`` with `tls`), or `nil`.
    public let certificates: TLSCertificates?
    /// The configuration file a sentinel runs from (Sentinel rewrites it), or `nil` for a data node.
    let sentinelConfigurationPath: String?
    private let directory: URL

    /// The running server's pid, or `nil`. Spawned and reaped here (not by `Foundation.Process`) so that stopping
    /// is a plain `kill` + `waitpid`.
    private let pid: Mutex<pid_t?>

    /// The server it runs: Redis, or Valkey 8. A TLS-only server is always Redis (the Valkey binary has no TLS).
    public let kind: ServerKind

    private init(
        port: Int, extraArguments: [String], directory: URL, certificates: TLSCertificates? = nil,
        sentinelConfigurationPath: String? = nil, kind: ServerKind
    ) {
        self.kind = certificates == nil ? kind : .redis
        self.sentinelConfigurationPath = sentinelConfigurationPath
        self.port = port
        self.extraArguments = extraArguments
        self.directory = directory
        self.certificates = certificates
        self.pid = Mutex(nil)
    }

    /// Starts a server and returns once it answers `PING`.
    ///
    /// With `tls`, the server accepts TLS only: `--port 0` (no plaintext listener) and `--tls-port` on the port, with
    /// the server certificate of `tls`; `arguments` come after, so they can replace any of it (another certificate,
    /// `--tls-auth-clients yes`).
    ///
    /// - Parameters:
    ///   - port: The port, or `nil` for a free one.
    ///   - arguments: Extra `redis-server` arguments, for example `["--requirepass", "secret"]`.
    ///   - tls: The CA and server certificate of a TLS-only server (``TLSCertificates/make(hosts:)``), or `nil`.
    ///   - server: Redis or Valkey; by default what `REDIS_SERVER` selects (``ServerKind/selected``).
    /// - Throws: ``RedisServerError`` when the server is not installed or does not come up within 10 s.
    public static func start(
        port: Int? = nil, arguments: [String] = [], tls: TLSCertificates? = nil, server: ServerKind = .selected
    ) async throws -> RedisServer {
        try await start(port: port, arguments: arguments, certificates: tls, kind: server)
    }

    /// Starts a sentinel (`redis-server sentinel.conf --sentinel`) monitoring the master on a loopback port, with
    /// `down-after-milliseconds` 1000 and `failover-timeout` 10000, as the tests and the rig use.
    ///
    /// - Parameters:
    ///   - masterPort: The monitored master's port on `127.0.0.1`.
    ///   - masterName: The name the master is monitored under.
    ///   - quorum: How many sentinels must agree the master is down.
    ///   - tls: With certificates, the sentinel accepts TLS only and reaches the nodes and the other sentinels with
    ///     TLS (`tls-replication yes`).
    public static func startSentinel(
        monitoring masterPort: Int, masterName: String, quorum: Int, tls: TLSCertificates? = nil
    ) async throws -> RedisServer {
        try await start(
            port: nil, arguments: tls == nil ? [] : ["--tls-replication", "yes"], certificates: tls,
            sentinelConfiguration: """
                sentinel monitor \(masterName) 127.0.0.1 \(masterPort) \(quorum)
                sentinel down-after-milliseconds \(masterName) 1000
                sentinel failover-timeout \(masterName) 10000
                sentinel parallel-syncs \(masterName) 1

                """)
    }

    private static func start(
        port: Int?, arguments: [String], certificates: TLSCertificates?, sentinelConfiguration: String? = nil,
        kind: ServerKind = .selected
    ) async throws -> RedisServer {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("redis-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let sentinelPath = sentinelConfiguration.map { _ in directory.appendingPathComponent("sentinel.conf").path }
        if let sentinelConfiguration, let sentinelPath {
            try sentinelConfiguration.write(toFile: sentinelPath, atomically: true, encoding: .utf8)
        }
        // A free port can be taken by someone else between the probe and redis-server's bind: try a few.
        var lastError: any Error = RedisServerError("no attempt")
        for _ in 0..<(port == nil ? 5 : 1) {
            let server = RedisServer(
                port: try port ?? freeLoopbackPort(), extraArguments: arguments, directory: directory,
                certificates: certificates, sentinelConfigurationPath: sentinelPath, kind: kind)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// The server to use for tests that need no private one: `REDIS_URL` when set, else one private server
    /// started on first use and shared by the whole process.
    public static func sharedURL() async throws -> String {
        if let url = ProcessInfo.processInfo.environment["REDIS_URL"], !url.isEmpty { return url }
        return try await SharedServer.instance.url()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit.
    public func stop() {
        let running = pid.withLock { pid -> pid_t? in
            defer { pid = nil }
            return pid
        }
        guard let running else { return }
        Self.terminate(running)
    }

    /// Freezes the process (SIGSTOP): it keeps its connections but answers nothing, like a stalled host.
    public func suspend() {
        if let running = pid.withLock({ $0 }) { kill(running, SIGSTOP) }
    }

    /// Thaws a process frozen by ``suspend()`` (SIGCONT).
    public func resume() {
        if let running = pid.withLock({ $0 }) { kill(running, SIGCONT) }
    }

    /// Kills the server with SIGKILL, as a crashed host would: no shutdown, no goodbye to its clients.
    public func crash() {
        let running = pid.withLock { pid -> pid_t? in
            defer { pid = nil }
            return pid
        }
        guard let running else { return }
        kill(running, SIGKILL)
        waitpid(running, nil, 0)
        _ = Self.registry.withLock { $0.remove(running) }
    }

    /// Stops and starts the server on the same port, like a Redis restart in production. Data is lost.
    ///
    /// - Parameter downtime: How long it stays down.
    public func restart(downtime: Duration = .zero) async throws {
        stop()
        if downtime > .zero { try await Task.sleep(for: downtime) }
        try await launch()
    }

    /// Whether the server process is running.
    public var isRunning: Bool {
        pid.withLock { pid in
            guard let running = pid else { return false }
            switch waitpid(running, nil, WNOHANG) {
            case 0: return true
            case running: return false
            default: return kill(running, 0) == 0  // not our child to wait for (EINTR, ECHILD): ask the kernel
            }
        }
    }

    /// Starts the process (used by ``start(port:arguments:tls:server:)`` and ``restart(downtime:)``).
    public func launch() async throws {
        guard let executable = kind.executable else {
            throw RedisServerError("\(kind.rawValue)-server is not installed (\(kind.installHint))")
        }
        let listener =
            if let certificates {
                [
                    "--port", "0", "--tls-port", String(port), "--tls-cert-file", certificates.serverCertificatePath,
                    "--tls-key-file", certificates.serverKeyPath, "--tls-ca-cert-file", certificates.caPath,
                    "--tls-auth-clients", "no",
                ]
            } else {
                ["--port", String(port)]
            }
        let sentinelMode = sentinelConfigurationPath.map { [$0, "--sentinel"] } ?? []
        let arguments =
            [executable] + sentinelMode + listener + [
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", directory.path, "--logfile", "redis.log",
                "--enable-debug-command", "local",
            ] + extraArguments
        let child = try Self.spawn(arguments)
        pid.withLock { $0 = child }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if !isRunning {
                let log = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8))
                stop()
                throw RedisServerError("redis-server exited at start: \(log?.suffix(400) ?? "no log")")
            }
            // A TLS port cannot be pinged in plaintext; a listener accepting connections is ready.
            if certificates == nil ? Self.answersPing(port: port) : Self.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        stop()
        throw RedisServerError("redis-server on port \(port) did not answer PING within 10 s")
    }

    /// Starts `arguments[0]` with stdin and stdout on `/dev/null` (stderr too unless `stderrPath` is given), an
    /// empty signal mask, and registers it to be killed when the test process exits.
    static func spawn(_ arguments: [String], stderrPath: String? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for descriptor: Int32 in [0, 1, 2] {
            let path = descriptor == 2 ? stderrPath ?? "/dev/null" : "/dev/null"
            let flags = descriptor == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND
            posix_spawn_file_actions_addopen(&actions, descriptor, path, flags, 0o644)
        }
        // The spawning thread may be a dispatch worker with every signal blocked; the child would inherit that mask
        // and ignore SIGTERM. Start it with an empty mask and default dispositions.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptySet = sigset_t()
        sigemptyset(&emptySet)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &emptySet)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, arguments[0], &actions, &attributes, &cArguments, environ)
        guard result == 0 else { throw RedisServerError("cannot start \(arguments[0]): error \(result)") }
        registerExitCleanup()
        _ = registry.withLock { $0.insert(child) }
        return child
    }

    static func terminate(_ child: pid_t) {
        kill(child, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if waitpid(child, nil, WNOHANG) != 0 { return }
            usleep(2_000)
        }
        kill(child, SIGKILL)
        waitpid(child, nil, 0)
        _ = registry.withLock { $0.remove(child) }
    }

    // MARK: Helpers

    private static let registry = Mutex<Set<pid_t>>([])
    private static let cleanupRegistered = Atomic<Bool>(false)

    private static func registerExitCleanup() {
        guard !cleanupRegistered.exchange(true, ordering: .relaxed) else { return }
        atexit {
            let pids = RedisServer.registry.withLock { Array($0) }
            for pid in pids {
                kill(pid, SIGKILL)
                waitpid(pid, nil, 0)
            }
        }
    }

    /// The path of the first executable called `name` on `PATH` (or in the usual system folders).
    public static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let candidates = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        for folder in candidates {
            let file = URL(fileURLWithPath: folder).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: file.path) { return file.path }
        }
        return nil
    }

    /// Commands to the server on a loopback port, on one connection of their own, closed before this returns.
    ///
    /// - Parameters:
    ///   - port: The server's port on `127.0.0.1`.
    ///   - commands: Each command's name and arguments; sent together, in order.
    ///   - tls: The certificates of a TLS-only server, whose CA the connection trusts; `nil` for plaintext.
    /// - Returns: One reply per command (an error reply stays a `RedisValue.error` value).
    public static func ask(port: Int, _ commands: [[String]], tls: TLSCertificates? = nil) async throws -> [RedisValue] {
        try await withClient(port: port, tls: tls) { try await $0.pipeline(commands.map { RedisCommand(strings: $0) }) }
    }

    /// One command to the server on a loopback port, on a connection of its own (TLS with `tls`); an error reply is
    /// thrown.
    public static func ask(port: Int, _ command: [String], tls: TLSCertificates? = nil) async throws -> RedisValue {
        try await withClient(port: port, tls: tls) { try await $0.send(RedisCommand(strings: command)) }
    }

    private static func withClient<T>(
        port: Int, tls: TLSCertificates?, _ body: (RedisClient) async throws -> T
    ) async throws -> T {
        var configuration = RedisConfiguration(topology: .standalone(.tcp(host: "127.0.0.1", port: port)), poolSize: 1)
        configuration.busyPollWindow = .zero
        configuration.tls = tls?.clientTLS
        let client = RedisClient(configuration: configuration)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Whether a loopback port can be bound right now.
    public static func isFree(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A port nobody listens on right now, chosen by the kernel.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisServerError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw RedisServerError("cannot bind a loopback port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A blocking TCP socket connected to `127.0.0.1:port`, or `nil` (`errno` says why); for tests that must send
    /// what no client library would. The caller closes it.
    public static func connectToLoopback(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            let failure = errno
            close(fd)
            errno = failure
            return nil
        }
        return fd
    }

    /// Whether something accepts TCP connections on the loopback port.
    public static func accepts(port: Int) -> Bool {
        guard let fd = connectToLoopback(port: port) else { return false }
        close(fd)
        return true
    }

    /// Whether something on the loopback port answers `PING` (or asks for `AUTH`, which also means it is up).
    public static func answersPing(port: Int) -> Bool {
        guard let fd = connectToLoopback(port: port) else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let ping = Array("PING\r\n".utf8)
        guard write(fd, ping, ping.count) == ping.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return false }
        let reply = String(decoding: buffer[..<count], as: UTF8.self)
        return reply.hasPrefix("+PONG") || reply.hasPrefix("-NOAUTH")
    }
}

/// A failure to start or stop a test server.
public struct RedisServerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public let description: String
    init(_ description: String) { self.description = description }
}

/// One server per process, started on first use. Concurrent first callers share one start (the actor is
/// reentrant across the `await`, so the task, not the server, is what is remembered).
private actor SharedServer {
    static let instance = SharedServer()
    private var starting: Task<RedisServer, any Error>?

    func url() async throws -> String {
        if let starting { return try await starting.value.url }
        let task = Task { try await RedisServer.start() }
        starting = task
        return try await task.value.url
    }
}
