import Foundation
public import RedisClient
import Synchronization

/// A master, a replica and three sentinels on free loopback ports: Redis's own failover engine, for tests.
///
/// ```swift
/// let set = try await SentinelSet.start()
/// defer { set.stop() }
/// let client = RedisClient(configuration: try RedisConfiguration(url: set.url))
/// try await set.failover()          // SENTINEL FAILOVER, returns once the replica is the master
/// ```
///
/// Sentinels run with `down-after-milliseconds` 1000. Start-up waits until every sentinel has found the replica
/// and the other sentinels, and ``waitUntilReplicated(timeout:)`` until the replica's link is up, since a replica that is
/// still syncing refuses to take over.
public final class SentinelSet: Sendable {
    /// The name the master is monitored under.
    public let masterName: String
    /// The two data nodes: the first is the master at start.
    public var nodes: [RedisServer] { nodeList.withLock { $0 } }
    private let nodeList: Mutex<[RedisServer]>
    /// The three sentinels.
    public let sentinels: [RedisServer]

    /// The certificates of a TLS-only set (nodes and sentinels), or `nil`.
    public let certificates: TLSCertificates?

    /// `redis-sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/<masterName>`, or for a TLS-only set
    /// `rediss-sentinel://...?ca=<the CA>`.
    public var url: String {
        let sentinels = sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/" + masterName
        guard let certificates else { return "redis-sentinel://" + sentinels }
        return "rediss-sentinel://\(sentinels)?\(certificates.urlQuery)"
    }

    private init(masterName: String, nodes: [RedisServer], sentinels: [RedisServer], certificates: TLSCertificates?) {
        self.certificates = certificates
        self.masterName = masterName
        self.nodeList = Mutex(nodes)
        self.sentinels = sentinels
    }

    /// Starts the set and returns once the sentinels agree on it and the replica is in sync.
    ///
    /// With `tls`, the nodes and the sentinels accept TLS only and speak TLS to each other (`tls-replication yes`).
    public static func start(masterName: String = "rsess", tls: TLSCertificates? = nil) async throws -> SentinelSet {
        let replication = tls == nil ? [] : ["--tls-replication", "yes"]
        let master = try await RedisServer.start(arguments: ["--repl-diskless-sync-delay", "0"] + replication, tls: tls)
        let replica = try await RedisServer.start(
            arguments: ["--replicaof", "127.0.0.1", String(master.port), "--repl-diskless-sync-delay", "0"] + replication,
            tls: tls)
        var sentinels: [RedisServer] = []
        for _ in 0..<3 {
            sentinels.append(
                try await RedisServer.startSentinel(monitoring: master.port, masterName: masterName, quorum: 2, tls: tls))
        }
        let set = SentinelSet(masterName: masterName, nodes: [master, replica], sentinels: sentinels, certificates: tls)
        try await set.waitUntilReplicated()
        try await set.waitUntilSentinelsAgree()
        return set
    }

    /// The set shared by a whole test process, started on first use (it takes seconds to agree).
    public static func shared() async throws -> SentinelSet {
        try await SharedSentinelSet.instance.set()
    }

    /// Stops every process.
    public func stop() {
        for sentinel in sentinels { sentinel.stop() }
        for node in nodes { node.stop() }
    }

    /// One command to one server, on a connection of its own.
    public func ask(_ port: Int, _ arguments: String...) async throws -> RedisValue {
        try await RedisServer.ask(port: port, arguments, tls: certificates)
    }

    /// The master's port as the first sentinel that answers names it.
    public func masterPort() async throws -> Int {
        for sentinel in sentinels where sentinel.isRunning {
            let reply = try? await ask(sentinel.port, "SENTINEL", "get-master-addr-by-name", masterName)
            if let port = reply?.array?.last?.int { return port }
        }
        throw RedisServerError("no sentinel names the master")
    }

    /// The data node that is the master now.
    public func master() async throws -> RedisServer {
        let port = try await masterPort()
        guard let node = nodes.first(where: { $0.port == port }) else {
            throw RedisServerError("the sentinels name port \(port), which is not in the set")
        }
        return node
    }

    /// The data node that is not the master now.
    public func replica() async throws -> RedisServer {
        let port = try await masterPort()
        guard let node = nodes.first(where: { $0.port != port }) else { throw RedisServerError("no replica") }
        return node
    }

    /// Starts a stopped or killed node again on its port as a replica of the current master, as an operator must
    /// (without `--replicaof` it would come back as a second master).
    @discardableResult
    public func restartAsReplica(_ node: RedisServer) async throws -> RedisServer {
        let master = try await masterPort()
        node.stop()
        let replication = certificates == nil ? [] : ["--tls-replication", "yes"]
        let restarted = try await RedisServer.start(
            port: node.port,
            arguments: ["--replicaof", "127.0.0.1", String(master), "--repl-diskless-sync-delay", "0"] + replication,
            tls: certificates)
        nodeList.withLock { nodes in
            if let index = nodes.firstIndex(where: { $0.port == node.port }) { nodes[index] = restarted }
        }
        return restarted
    }

    /// Waits until the replica's link to the master is up (`master_link_status:up`).
    public func waitUntilReplicated(timeout: Duration = .seconds(30)) async throws {
        let ready = await eventually(timeout: timeout, interval: .milliseconds(50)) {
            guard let replica = try? await self.replica(), replica.isRunning,
                let info = try? await self.ask(replica.port, "INFO", "replication").string
            else { return false }
            return info.contains("master_link_status:up")
        }
        if !ready { throw RedisServerError("the replica's link did not come up within \(timeout)") }
    }

    /// Waits until every sentinel knows the replica and the two other sentinels, so that a failover can be agreed.
    public func waitUntilSentinelsAgree(timeout: Duration = .seconds(30)) async throws {
        let ready = await eventually(timeout: timeout, interval: .milliseconds(50)) {
            for sentinel in self.sentinels {
                guard let fields = try? await self.ask(sentinel.port, "SENTINEL", "MASTER", self.masterName).array
                else { return false }
                var values: [String: String] = [:]
                for index in stride(from: 0, to: fields.count - 1, by: 2) {
                    if let key = fields[index].string { values[key] = fields[index + 1].string }
                }
                guard values["num-slaves"].flatMap(Int.init) ?? 0 >= 1,
                    values["num-other-sentinels"].flatMap(Int.init) ?? 0 >= 2,
                    !(values["flags"] ?? "").contains("down")
                else { return false }
            }
            return true
        }
        if !ready { throw RedisServerError("the sentinels did not agree on the set within \(timeout)") }
    }

    /// `SENTINEL FAILOVER` on the first sentinel (asked again while the sentinels find no fit replica yet), and waits until the sentinels name the other node and it says it
    /// is the master. Returns the new master.
    @discardableResult
    public func failover(timeout: Duration = .seconds(30)) async throws -> RedisServer {
        let old = try await masterPort()
        // Right after a heal the sentinels may not yet consider the replica fit (NOGOODSLAVE), or still be
        // finishing the last failover (INPROG): ask again for a while.
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                _ = try await ask(sentinels[0].port, "SENTINEL", "FAILOVER", masterName)
                break
            } catch let error as RedisError
                where (error.message.hasPrefix("NOGOODSLAVE") || error.message.hasPrefix("INPROG"))
                && ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        return try await waitForNewMaster(other: old, timeout: timeout)
    }

    /// Waits until the sentinels name a master other than `port`, and it answers `ROLE` as a master.
    public func waitForNewMaster(other port: Int, timeout: Duration = .seconds(30)) async throws -> RedisServer {
        let switched = await eventually(timeout: timeout, interval: .milliseconds(50)) {
            guard let current = try? await self.master(), current.port != port,
                let role = try? await self.ask(current.port, "ROLE").array?.first?.string
            else { return false }
            return role == "master"
        }
        guard switched else { throw RedisServerError("no failover away from port \(port) within \(timeout)") }
        return try await master()
    }
}

/// One sentinel set per process, started on first use.
private actor SharedSentinelSet {
    static let instance = SharedSentinelSet()
    private var starting: Task<SentinelSet, any Error>?

    func set() async throws -> SentinelSet {
        if let starting { return try await starting.value }
        let task = Task { try await SentinelSet.start() }
        starting = task
        return try await task.value
    }
}
