/// The one way a library thread reaches a node: resolve it, connect, run the handshake (with the role check where
/// the resolver asks for one), and make sure the node did not change meanwhile.
///
/// Pool connections, subscribers and key-tracking connections all connect through it, so what "a usable connection
/// to the right node" means is written once.
struct NodeConnector: Sendable {
    let configuration: RedisConfiguration
    let resolver: any NodeResolver

    /// Connects to the node the resolver names now. Blocks the calling thread.
    ///
    /// - Parameter readTimeout: The socket timeout; `nil` uses the configuration's command timeout.
    /// - Throws: ``RedisError/Code/notMaster`` when the node says it is not the master, or the master changed while
    ///   connecting (the resolver has then been told); otherwise the connect or handshake error.
    func connect(readTimeout: Duration? = nil) throws(RedisError) -> (HiredisConnection, ResolvedNode) {
        let node = try resolver.resolve()
        let connection: HiredisConnection
        do throws(RedisError) {
            connection = try HiredisConnection(
                configuration: configuration, node: node.endpoint, readTimeout: readTimeout,
                requiresMaster: resolver.requiresMaster)
        } catch {
            if error.code == .notMaster { resolver.refused(node) }
            throw error
        }
        // A change announced while connecting: this may be the old master, so the next attempt asks again.
        guard resolver.isCurrent(node) else {
            throw RedisError(
                .notMaster, "the master changed while connecting",
                context: node.endpoint?.description ?? configuration.serverDescription)
        }
        return (connection, node)
    }
}
