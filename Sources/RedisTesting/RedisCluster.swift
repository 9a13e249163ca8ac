import Foundation
public import RedisClient
import Synchronization

/// A Redis Cluster of real `redis-server --cluster-enabled yes` processes on free loopback ports, created with
/// `redis-cli --cluster create`, for tests and benchmarks.
///
/// ```swift
/// let cluster = try await RedisCluster.start()          // 3 primaries, 1 replica each
/// defer { cluster.stop() }
/// let client = RedisClient(configuration: try RedisConfiguration(url: cluster.url))
/// ```
///
/// Nodes run with `--cluster-node-timeout 1000`, `--repl-diskless-sync-delay 0` and
/// `--cluster-require-full-coverage no` (a lost shard does not stop the others); start-up waits for
/// `cluster_state:ok` everywhere and for every replica's link, since a primary killed while its replica still syncs
/// leaves the cluster down.
public final class RedisCluster: Sendable {
    /// Every node, primaries and replicas.
    public var nodes: [RedisServer] { nodeList.withLock { $0 } }
    private let nodeList: Mutex<[RedisServer]>

    /// The certificates of a TLS-only cluster (every node `--port 0`, `tls-cluster yes`), or `nil`.
    public let certificates: TLSCertificates?

    /// `redis-cluster://127.0.0.1:<first>,127.0.0.1:<second>`: two seeds, any node would do; for a TLS-only cluster
    /// `rediss-cluster://...?ca=<the CA>`.
    public var url: String {
        let seeds = nodes.prefix(2).map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
        guard let certificates else { return "redis-cluster://" + seeds }
        return "rediss-cluster://\(seeds)?\(certificates.urlQuery)"
    }

    private init(nodes: [RedisServer], certificates: TLSCertificates?) {
        self.nodeList = Mutex(nodes)
        self.certificates = certificates
    }

    static let nodeArguments = [
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
        "--repl-diskless-sync-delay", "0", "--cluster-require-full-coverage", "no",
    ]

    /// Starts `primaries` primaries with `replicas` replicas each, and returns once the cluster is ok.
    ///
    /// With `tls`, every node accepts TLS only, and the nodes speak TLS to each other on the bus and for replication
    /// (`tls-cluster yes`, `tls-replication yes`), as a managed TLS cluster does.
    ///
    /// `server` picks Redis or Valkey (default: what `REDIS_SERVER` selects); a TLS cluster is always Redis.
    public static func start(
        primaries: Int = 3, replicas: Int = 1, tls: TLSCertificates? = nil, server: ServerKind = .selected
    ) async throws -> RedisCluster {
        var nodes: [RedisServer] = []
        for _ in 0..<(primaries * (1 + replicas)) { nodes.append(try await startNode(tls: tls, server: server)) }
        let cluster = RedisCluster(nodes: nodes, certificates: tls)
        try cluster.runCLI(
            ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" }
                + ["--cluster-replicas", String(replicas), "--cluster-yes"])
        try await cluster.waitUntilHealthy()
        return cluster
    }

    /// The cluster shared by a whole test process, started on first use (a cluster takes seconds to create).
    public static func shared() async throws -> RedisCluster {
        try await SharedCluster.instance.cluster()
    }

    /// Stops every node.
    public func stop() {
        for node in nodes { node.stop() }
    }

    /// One command to one node, on a connection of its own.
    public func ask(_ port: Int, _ arguments: String...) async throws -> RedisValue {
        try await ask(port, arguments)
    }

    /// One command, given as an array, to one node on a connection of its own.
    public func ask(_ port: Int, _ arguments: [String]) async throws -> RedisValue {
        try await RedisServer.ask(port: port, arguments, tls: certificates)
    }

    /// The port of the primary that owns `slot`, as the first node that answers sees it.
    public func owner(ofSlot slot: Int) async throws -> Int {
        for node in nodes where node.isRunning {
            guard let ranges = try? await ask(node.port, "CLUSTER", "SLOTS").array else { continue }
            for range in ranges {
                guard let fields = range.array, fields.count >= 3, let start = fields[0].int, let end = fields[1].int,
                    let port = fields[2].array?[1].int
                else { continue }
                if (start...end).contains(slot) { return port }
            }
        }
        throw RedisServerError("no node knows the owner of slot \(slot)")
    }

    /// The ports of the primaries that own slots now.
    public func primaryPorts() async throws -> [Int] {
        for node in nodes where node.isRunning {
            guard let ranges = try? await ask(node.port, "CLUSTER", "SLOTS").array else { continue }
            return Array(Set(ranges.compactMap { $0.array?[2].array?[1].int })).sorted()
        }
        throw RedisServerError("no node answers CLUSTER SLOTS")
    }

    /// The node's cluster ID (`CLUSTER MYID`).
    public func nodeID(_ port: Int) async throws -> String {
        guard let id = try await ask(port, "CLUSTER", "MYID").string else { throw RedisServerError("no node ID") }
        return id
    }

    /// Waits until every running node says `cluster_state:ok`, every replica's link is up, and every primary's
    /// replicas acknowledge a write (`WAIT`): a replica that has just synced can take a second to do so.
    public func waitUntilHealthy(timeout: Duration = .seconds(30)) async throws {
        let healthy = await eventually(timeout: timeout, interval: .milliseconds(50)) {
            for node in self.nodes where node.isRunning {
                guard let info = try? await self.ask(node.port, "CLUSTER", "INFO").string,
                    info.contains("cluster_state:ok")
                else { return false }
                guard let replication = try? await self.ask(node.port, "INFO", "replication").string else {
                    return false
                }
                if replication.contains("role:slave") && !replication.contains("master_link_status:up") { return false }
                if let role = try? await self.ask(node.port, "ROLE").array, role.first?.string == "master",
                    role.count >= 3, let replicas = role[2].array?.count, replicas > 0
                {
                    // A write to a key this node owns, then WAIT on the same connection.
                    guard let key = try? await self.keyOwned(by: node.port) else { return false }
                    let acknowledged = try? await self.askOnOneConnection(
                        node.port, [["INCR", key], ["WAIT", String(replicas), "200"]])
                    guard acknowledged?.last?.int == replicas else { return false }
                }
            }
            return true
        }
        if !healthy { throw RedisServerError("the cluster did not become healthy within \(timeout)") }
    }

    /// A key whose slot the primary on `port` owns.
    public func keyOwned(by port: Int) async throws -> String {
        let ranges = try await ask(port, "CLUSTER", "SLOTS").array ?? []
        let owned = ranges.compactMap { range -> ClosedRange<Int>? in
            guard let fields = range.array, fields.count >= 3, let start = fields[0].int, let end = fields[1].int,
                fields[2].array?[1].int == port
            else { return nil }
            return start...end
        }
        for index in 0..<100_000 {
            let key = "rsess-test:health:\(index)"
            let slot = HashSlot(key).value
            if owned.contains(where: { $0.contains(slot) }) { return key }
        }
        throw RedisServerError("the node on port \(port) owns no slot")
    }

    /// Several commands on one connection, which `WAIT` needs: it counts only that connection's writes.
    func askOnOneConnection(_ port: Int, _ commands: [[String]]) async throws -> [RedisValue] {
        try await RedisServer.ask(port: port, commands, tls: certificates)
    }

    /// Moves `count` slots from one primary to another with `redis-cli --cluster reshard` (keys migrate, so clients
    /// see `ASK` and then `MOVED`).
    public func reshard(count: Int, from source: Int, to destination: Int) async throws {
        let from = try await nodeID(source)
        let to = try await nodeID(destination)
        try runCLI([
            "--cluster", "reshard", "127.0.0.1:\(source)", "--cluster-from", from, "--cluster-to", to,
            "--cluster-slots", String(count), "--cluster-yes",
        ])
    }

    /// `CLUSTER FAILOVER` on a replica: it becomes the primary of its shard without losing writes.
    ///
    /// A manual failover waits for the replica to catch up with its primary and for the primary's vote; when one
    /// does not complete in 5 s (a primary that was itself just failed over), it is asked again, three times at most.
    public func failover(replica port: Int) async throws {
        for _ in 0..<3 {
            _ = try? await ask(port, "CLUSTER", "FAILOVER")
            let promoted = await eventually(timeout: .seconds(5), interval: .milliseconds(20)) {
                (try? await self.ask(port, "ROLE").array?.first?.string) == "master"
            }
            if promoted { return }
        }
        throw RedisServerError("the replica on port \(port) was not promoted")
    }

    /// A replica of the primary on `port`.
    public func replica(of port: Int) async throws -> Int {
        for node in nodes where node.isRunning && node.port != port {
            guard let replication = try? await ask(node.port, "INFO", "replication").string else { continue }
            if replication.contains("role:slave") && replication.contains("master_port:\(port)\r") { return node.port }
        }
        throw RedisServerError("the primary on port \(port) has no replica")
    }

    /// Starts an empty primary and joins it to the cluster (`redis-cli --cluster add-node`); it owns no slots yet.
    @discardableResult
    public func addPrimary() async throws -> RedisServer {
        let node = try await Self.startNode(tls: certificates, server: nodes.first?.kind ?? .selected)
        nodeList.withLock { $0.append(node) }
        try runCLI(["--cluster", "add-node", "127.0.0.1:\(node.port)", "127.0.0.1:\(nodes[0].port)"])
        try await waitUntilHealthy()
        return node
    }

    /// A node on a port whose cluster bus port (+10000) is free too, which caps it at 55535.
    static func startNode(tls: TLSCertificates?, server: ServerKind) async throws -> RedisServer {
        var lastError: any Error = RedisServerError("no free port for a cluster node")
        for _ in 0..<20 {
            let port = Int.random(in: 20_000..<55_000)
            guard RedisServer.isFree(port: port), RedisServer.isFree(port: port + 10_000) else { continue }
            do {
                let tlsArguments = tls == nil ? [] : ["--tls-cluster", "yes", "--tls-replication", "yes"]
                return try await RedisServer.start(
                    port: port, arguments: nodeArguments + tlsArguments, tls: tls, server: server)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// `redis-cli` with `arguments`, over TLS for a TLS cluster.
    func runCLI(_ arguments: [String]) throws {
        let tlsArguments = certificates.map { ["--tls", "--cacert", $0.caPath] } ?? []
        try Self.runCLI(tlsArguments + arguments)
    }

    /// `redis-cli` with `arguments`, ended after `timeout`: a `--cluster create` whose nodes cannot meet (a bus that
    /// refuses their certificates, say) waits for them forever, and a test's time limit cannot stop a blocked thread.
    static func runCLI(_ arguments: [String], timeout: Duration = .seconds(120)) throws {
        guard let cli = RedisServer.findExecutable("redis-cli") else {
            throw RedisServerError("redis-cli is not installed (apt-get install redis-tools)")
        }
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("redis-cli-\(UUID().uuidString.prefix(8)).out").path
        guard FileManager.default.createFile(atPath: outputPath, contents: nil),
            let output = FileHandle(forWritingAtPath: outputPath)
        else { throw RedisServerError("cannot create \(outputPath)") }
        defer {
            try? output.close()
            try? FileManager.default.removeItem(atPath: outputPath)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cli)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        let summary = "redis-cli \(arguments.filter { !$0.hasPrefix("--tls") && !$0.hasSuffix(".crt") }.prefix(2).joined(separator: " "))"
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw RedisServerError("\(summary) did not finish within \(timeout): \(text.suffix(600))")
        }
        guard process.terminationStatus == 0 else {
            throw RedisServerError("\(summary) failed: \(text.suffix(600))")
        }
    }
}

/// One cluster per process, started on first use.
private actor SharedCluster {
    static let instance = SharedCluster()
    private var starting: Task<RedisCluster, any Error>?

    func cluster() async throws -> RedisCluster {
        if let starting { return try await starting.value }
        let task = Task { try await RedisCluster.start() }
        starting = task
        return try await task.value
    }
}
