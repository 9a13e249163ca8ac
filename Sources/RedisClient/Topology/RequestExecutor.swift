/// What carries a ``RedisClient``'s requests, chosen once by its ``RedisConfiguration/Topology``: a ``NodePool``
/// over one node resolver (a standalone server, or the master the sentinels name), or a ``ClusterRouter``.
///
/// The client is one type whatever the topology, because its users choose the topology by URL at deployment, not in
/// code: the stores, caches and bus take a `RedisClient`, and this protocol is where the topologies part.
protocol RequestExecutor: Sendable {
    /// Sends a request and waits for its replies.
    func execute(_ request: ConnectionRequest) async throws(RedisError) -> RedisValue

    /// Queues a command nobody waits for; dropped when it cannot be sent now.
    func submitDetached(_ command: RedisCommand)

    /// Connects now and keeps the topology current (its periodic work) until the calling task is cancelled.
    func run() async

    /// Fails what is queued and in flight with ``RedisError/Code/closed`` and returns once every connection
    /// thread has exited.
    func close() async

    /// As ``close()``, without waiting: for a client's `deinit`.
    func shutdown()

    /// Connections that are up right now, for health checks.
    var connectedCount: Int { get }
}

extension RedisConfiguration.Topology {
    /// The executor for this topology.
    func makeExecutor(
        configuration: RedisConfiguration, counters: ClientCounters, namePrefix: String,
        redirects: TrackingRedirects
    ) -> any RequestExecutor {
        switch self {
        case .standalone:
            return NodePool(
                configuration: configuration, resolver: FixedNode(), counters: counters, namePrefix: namePrefix,
                redirects: redirects)
        case .sentinel(let sentinel):
            let monitor = SentinelMonitor.acquire(sentinel, timeouts: configuration)
            return NodePool(
                configuration: configuration, resolver: monitor, counters: counters, namePrefix: namePrefix,
                redirects: redirects, release: { monitor.release() })
        case .cluster(let cluster):
            return ClusterRouter(
                configuration: configuration, cluster: cluster, counters: counters, namePrefix: namePrefix,
                redirects: redirects)
        }
    }
}
