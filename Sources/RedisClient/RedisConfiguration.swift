/// How to reach a Redis server and how the client behaves towards it.
///
/// Build one from a URL (``init(url:)``) or from fields; every field has a default.
///
/// ```swift
/// var configuration = try RedisConfiguration(url: "redis://:secret@127.0.0.1:6379/2")
/// configuration.clientName = "web-1"
/// ```
public struct RedisConfiguration: Sendable, Hashable {
    /// Where the server listens.
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// A TCP host name or address and port.
        case tcp(host: String, port: Int)
        /// A Unix domain socket path.
        case unixSocket(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unixSocket(let path): "unix:\(path)"
            }
        }
    }

    /// Exponential backoff with full jitter between reconnect attempts.
    public struct Backoff: Sendable, Hashable {
        /// The delay ceiling of the first retry.
        public var initialDelay: Duration
        /// The largest delay between two attempts.
        public var maximumDelay: Duration

        /// - Parameters:
        ///   - initialDelay: The delay ceiling of the first retry (default 50 ms).
        ///   - maximumDelay: The largest delay between two attempts (default 2 s).
        public init(initialDelay: Duration = .milliseconds(50), maximumDelay: Duration = .seconds(2)) {
            precondition(initialDelay > .zero && maximumDelay >= initialDelay, "backoff delays must grow")
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }

        /// The delay before retry number `attempt` (0-based): uniformly random in `[ceiling/2, ceiling]`, where the
        /// ceiling doubles per attempt up to ``maximumDelay``. Half-jitter keeps a floor so a herd of instances that
        /// lost Redis together does not retry in lockstep nor in a tight loop.
        public func delay(attempt: Int) -> Duration {
            let initial = initialDelay.milliseconds
            let ceiling = min(maximumDelay.milliseconds, initial * Double(1 << min(attempt, 20)))
            let value = Double.random(in: (ceiling / 2)...ceiling)
            return .microseconds(Int64(value * 1000))
        }
    }

    /// A master found through Redis Sentinel: where the sentinels listen and what they call the master.
    ///
    /// With one, ``endpoint`` is not used: every connection asks the sentinels where the master is, checks `ROLE`
    /// before use, and moves when they announce a failover (see ``RedisClient``).
    public struct Sentinel: Sendable, Hashable {
        /// The sentinels, asked in turn. At least one.
        public var sentinels: [Endpoint]
        /// The master's name in the sentinels' configuration (`sentinel monitor <name> ...`).
        public var masterName: String
        /// The sentinels' own ACL user, if they require one (separate from the master's).
        public var username: String?
        /// The sentinels' own password, if they require one (separate from the master's).
        public var password: String?
        /// How often the sentinels are polled as a backstop for a lost `+switch-master` announcement. Default 1 s.
        public var pollInterval: Duration

        /// - Parameters:
        ///   - sentinels: The sentinels' addresses (at least one).
        ///   - masterName: The monitored master's name.
        ///   - username: The sentinels' ACL user, or `nil`.
        ///   - password: The sentinels' password, or `nil`.
        ///   - pollInterval: The backstop poll's period.
        public init(
            sentinels: [Endpoint], masterName: String, username: String? = nil, password: String? = nil,
            pollInterval: Duration = .seconds(1)
        ) {
            precondition(!sentinels.isEmpty, "Sentinel needs at least one sentinel address")
            precondition(!masterName.isEmpty, "Sentinel needs the master's name")
            precondition(pollInterval > .zero, "pollInterval must be positive")
            self.sentinels = sentinels
            self.masterName = masterName
            self.username = username
            self.password = password
            self.pollInterval = pollInterval
        }
    }

    /// A Redis Cluster: the nodes to ask for the slot table first.
    ///
    /// With one, ``endpoint`` is not used: the client reads `CLUSTER SLOTS`, keeps one pool of ``poolSize``
    /// connections per primary, and sends each command to the owner of its keys' slot (see ``RedisClient``).
    public struct Cluster: Sendable, Hashable {
        /// Nodes to ask for the table (any node of the cluster; the primaries it names are used from then on).
        public var seeds: [Endpoint]
        /// How often the table is read again, besides after a `MOVED` to an unknown node or a lost node.
        /// Default 5 s.
        public var refreshInterval: Duration

        /// - Parameters:
        ///   - seeds: Nodes to ask for the slot table (at least one).
        ///   - refreshInterval: The period of the background refresh.
        public init(seeds: [Endpoint], refreshInterval: Duration = .seconds(5)) {
            precondition(!seeds.isEmpty, "a cluster needs at least one seed node")
            precondition(refreshInterval > .zero, "refreshInterval must be positive")
            self.seeds = seeds
            self.refreshInterval = refreshInterval
        }
    }

    /// How the client reaches its data. Each case holds exactly what that way needs, so a configuration cannot
    /// mix two (a sentinel set with a fixed endpoint, a cluster with a database).
    public enum Topology: Sendable, Hashable {
        /// One server at this address.
        case standalone(Endpoint)
        /// A master found through Redis Sentinel; it follows failovers.
        case sentinel(Sentinel)
        /// A Redis Cluster reached through its seed nodes; requests go to the owner of their keys' slot.
        case cluster(Cluster)
    }

    /// How the client reaches its data. Default: one server at `127.0.0.1:6379`.
    public var topology: Topology

    /// The server of a standalone topology; `nil` for Sentinel and Cluster, whose nodes are found at run time.
    public var endpoint: Endpoint? {
        if case .standalone(let endpoint) = topology { return endpoint }
        return nil
    }
    /// The sentinels of a Sentinel topology.
    public var sentinel: Sentinel? {
        if case .sentinel(let sentinel) = topology { return sentinel }
        return nil
    }
    /// The seed nodes of a cluster topology.
    public var cluster: Cluster? {
        if case .cluster(let cluster) = topology { return cluster }
        return nil
    }
    /// The ACL user name for `AUTH user password`; `nil` sends `AUTH password` (the `default` user).
    public var username: String?
    /// The password sent with `AUTH` on every (re)connect; `nil` sends no `AUTH`.
    public var password: String?
    /// The database selected with `SELECT` on every (re)connect. Default 0.
    public var database: Int
    /// How long a connect attempt may take. Default 1 s.
    public var connectTimeout: Duration
    /// How long the server may take to answer one command; past it the connection is discarded and the command
    /// fails with ``RedisError/Code/timeout``. Default 2 s.
    public var commandTimeout: Duration
    /// Number of connections in the pool. Each is owned by one thread and pipelines automatically, so a small pool
    /// carries a large concurrency. Default 2.
    public var poolSize: Int
    /// TLS to every node, or `nil` for plaintext (the default). See ``TLS``.
    public var tls: TLS?
    /// The name sent with `CLIENT SETNAME` on every (re)connect (visible in `CLIENT LIST`); `nil` sends none.
    public var clientName: String?
    /// The delay schedule between reconnect attempts.
    public var reconnectBackoff: Backoff
    /// The most commands a connection writes in one batch; bounds the memory of one pipeline. Default 256.
    public var maximumPipelineDepth: Int
    /// How long a connection thread polls before it sleeps: for the reply to a small batch, and for the next
    /// command once a batch is done. Default 50 µs; `.zero` never polls; at most 1 ms is used.
    ///
    /// A sleeping thread costs a wake-up per command, which on a virtual machine takes tens of microseconds, often
    /// more than a loopback round trip. Polling for a short window removes that wake-up and roughly doubles what one
    /// task gets out of a nearby server. The price is CPU: at most this window per command, spent only while replies
    /// keep arriving within it. A connection whose replies usually take longer (a distant server, a loaded one)
    /// stops polling for them on its own.
    ///
    /// On a Redis Cluster connections never poll: with one pool per primary there are more connection threads than
    /// cores.
    public var busyPollWindow: Duration

    /// The server as errors and logs name it: the endpoint, the master's name and its sentinels, or the seeds.
    public var serverDescription: String {
        switch topology {
        case .standalone(let endpoint):
            return endpoint.description
        case .sentinel(let sentinel):
            let sentinels = sentinel.sentinels.map(\.description).joined(separator: ",")
            return "master '\(sentinel.masterName)' via sentinels \(sentinels)"
        case .cluster(let cluster):
            return "cluster via \(cluster.seeds.map(\.description).joined(separator: ","))"
        }
    }

    /// Creates a configuration from fields.
    ///
    /// - Parameters:
    ///   - topology: How the client reaches its data: one server (the default, `127.0.0.1:6379`), a Sentinel set or
    ///     a cluster.
    ///   - username: ACL user name, or `nil`.
    ///   - password: Password for `AUTH`, or `nil`.
    ///   - database: Database index for `SELECT`.
    ///   - connectTimeout: Bound on one connect attempt.
    ///   - commandTimeout: Bound on the server's answer to one command.
    ///   - poolSize: Number of pooled connections (at least 1).
    ///   - clientName: Name for `CLIENT SETNAME`, or `nil`.
    ///   - reconnectBackoff: Delays between reconnect attempts.
    ///   - maximumPipelineDepth: Most commands written in one batch.
    ///   - busyPollWindow: How long a connection thread polls for a reply or for work before sleeping.
    ///   - tls: TLS to every node, or `nil` for plaintext.
    public init(
        topology: Topology = .standalone(.tcp(host: "127.0.0.1", port: 6379)),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(1),
        commandTimeout: Duration = .seconds(2),
        poolSize: Int = 2,
        clientName: String? = nil,
        reconnectBackoff: Backoff = Backoff(),
        maximumPipelineDepth: Int = 256,
        busyPollWindow: Duration = .microseconds(50),
        tls: TLS? = nil
    ) {
        precondition(poolSize >= 1, "poolSize must be at least 1")
        precondition(database >= 0, "database must not be negative")
        precondition(connectTimeout > .zero && commandTimeout > .zero, "timeouts must be positive")
        precondition(maximumPipelineDepth >= 1, "maximumPipelineDepth must be at least 1")
        precondition(busyPollWindow >= .zero, "busyPollWindow must not be negative")
        self.topology = topology
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = poolSize
        self.clientName = clientName
        self.reconnectBackoff = reconnectBackoff
        self.maximumPipelineDepth = maximumPipelineDepth
        self.busyPollWindow = busyPollWindow
        self.tls = tls
    }

    /// Parses a Redis URL.
    ///
    /// Accepted forms:
    /// - `redis://[[user]:password@]host[:port][/db]` (IPv6 hosts in brackets: `redis://[::1]:6380`)
    /// - `unix:///path/to/redis.sock[?db=N]` (also `redis+unix://`, and `?password=` / `?user=`)
    /// - `redis-sentinel://[[user]:password@]host1:26379[,host2:26379...]/<master-name>[/db]`: a master found through
    ///   Redis Sentinel (``sentinel``). The user and password are the master's; the sentinels' own are
    ///   `?sentinel_user=` and `?sentinel_password=`, and `?sentinel_poll_ms=` sets the backstop poll.
    /// - `redis-cluster://[[user]:password@]host:port[,host:port...]`: a Redis Cluster reached through these seed nodes
    ///   (``cluster``); `?refresh_ms=` sets the background refresh of the slot table.
    ///
    /// `rediss://`, `rediss-sentinel://` and `rediss-cluster://` are the same with TLS to every node (``tls``),
    /// configured by these parameters:
    /// - `ca=PATH`: the CA certificates to trust (default: the system's trust store);
    /// - `cert=PATH` and `key=PATH`: a client certificate and its key, for mutual TLS;
    /// - `sni=NAME`: the name sent and verified on every node (default: the first host of the URL);
    /// - `verify=none`: check no certificate (``TLS/Verification/insecureNoVerification``; warned at every connect).
    ///
    /// User name, password and paths are percent-decoded. Other fields keep their defaults.
    ///
    /// - Parameter url: The URL text.
    /// - Throws: ``RedisError`` with code ``RedisError/Code/invalidConfiguration`` and a message naming the part
    ///   of the URL that is wrong.
    public init(url: String) throws(RedisError) {
        self.init()
        try RedisURLParser(url).apply(to: &self)
    }
}
