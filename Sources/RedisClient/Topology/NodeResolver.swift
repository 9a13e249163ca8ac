/// Says which node a connection goes to, and whether the node it reached is still the right one.
///
/// A standalone server and a cluster node are one fixed address (``FixedNode``); a Sentinel-monitored master is
/// wherever the sentinels say (``SentinelMonitor``). Pool connections, subscribers and key-tracking connections all
/// reach their node through one ``NodeConnector`` over a resolver, so a new way of finding a node is one new
/// conformance.
protocol NodeResolver: Sendable {
    /// Whether a node reached through this resolver must say it is a master (`ROLE`) before it is used, and a
    /// `-READONLY` reply means it was demoted under the connection.
    var requiresMaster: Bool { get }

    /// The node to connect to now. Blocks the calling thread (a library thread) when it has to ask.
    func resolve() throws(RedisError) -> ResolvedNode

    /// Whether `node` is still where connections should go. Called before every batch, so it must be cheap.
    func isCurrent(_ node: ResolvedNode) -> Bool

    /// `node` said it is not a master: forget it and find the master again.
    func refused(_ node: ResolvedNode)

    /// Calls `handler` whenever the node changes, so waiting connections can be woken; returns a token for
    /// ``removeObserver(_:)``.
    func addObserver(_ handler: @escaping @Sendable () -> Void) -> Int

    func removeObserver(_ token: Int)
}

/// A node as a resolver gave it: where, and in which generation of the resolver's knowledge.
struct ResolvedNode: Sendable, Hashable {
    /// Where to connect; `nil` for the configuration's own endpoint.
    var endpoint: RedisConfiguration.Endpoint?
    var generation: UInt64
}

/// One address that never changes: a standalone server, or one node of a cluster.
struct FixedNode: NodeResolver {
    var endpoint: RedisConfiguration.Endpoint?

    init(_ endpoint: RedisConfiguration.Endpoint? = nil) { self.endpoint = endpoint }

    var requiresMaster: Bool { false }
    func resolve() -> ResolvedNode { ResolvedNode(endpoint: endpoint, generation: 0) }
    func isCurrent(_ node: ResolvedNode) -> Bool { true }
    func refused(_ node: ResolvedNode) {}
    func addObserver(_ handler: @escaping @Sendable () -> Void) -> Int { 0 }
    func removeObserver(_ token: Int) {}
}

extension SentinelMonitor: NodeResolver {
    var requiresMaster: Bool { true }

    func resolve() throws(RedisError) -> ResolvedNode {
        let (endpoint, generation) = try master()
        return ResolvedNode(endpoint: endpoint, generation: generation)
    }

    func isCurrent(_ node: ResolvedNode) -> Bool { generation == node.generation }

    func refused(_ node: ResolvedNode) {
        if let endpoint = node.endpoint { nodeIsNotMaster(endpoint) }
    }
}
