import Synchronization

/// The connections of a client whose requests all go to one node at a time: a standalone server, or the master a
/// ``SentinelMonitor`` names. Each ``ConnectionWorker`` reaches the node through the same ``NodeResolver``, and a
/// change of node wakes every one of them.
final class NodePool: RequestExecutor {
    private let configuration: RedisConfiguration
    private let workers: [ConnectionWorker]
    private let resolver: any NodeResolver
    private let observer: Int
    private let counters: ClientCounters
    /// Gives back what the pool holds beyond its workers (a share of a Sentinel monitor), once.
    private let release: Mutex<(@Sendable () -> Void)?>

    init(
        configuration: RedisConfiguration, resolver: any NodeResolver, counters: ClientCounters, namePrefix: String,
        redirects: TrackingRedirects? = nil, release: (@Sendable () -> Void)? = nil
    ) {
        self.configuration = configuration
        self.resolver = resolver
        self.counters = counters
        self.release = Mutex(release)
        // `poolSize` is a `var`: a configuration edited after its `init` may say 0; a pool always has a connection.
        let workers = (0..<max(1, configuration.poolSize)).map { index in
            ConnectionWorker(
                configuration: configuration, resolver: resolver, name: namePrefix + String(index), counters: counters,
                redirects: redirects)
        }
        self.workers = workers
        self.observer = resolver.addObserver {
            for worker in workers { worker.nodeChanged() }
        }
    }

    deinit { shutdown() }

    func execute(_ request: ConnectionRequest) async throws(RedisError) -> RedisValue {
        let worker = try ConnectionWorker.pick(from: workers, configuration: configuration)
        counters.requests.add(1, ordering: .relaxed)
        counters.commands.add(request.replyCount, ordering: .relaxed)
        return try await worker.perform(request)
    }

    func submitDetached(_ command: RedisCommand) {
        guard let worker = try? ConnectionWorker.pick(from: workers, configuration: configuration) else { return }
        counters.requests.add(1, ordering: .relaxed)
        counters.commands.add(1, ordering: .relaxed)
        worker.submitDetached(ConnectionRequest(command))
    }

    func run() async {
        for worker in workers { worker.start() }
        await waitForCancellation()
    }

    func close() async {
        shutdown()
        for worker in workers { await worker.waitUntilExited() }
    }

    func shutdown() {
        for worker in workers { worker.shutdown() }
        guard let release = release.withLock({ $0.take() }) else { return }
        resolver.removeObserver(observer)
        release()
    }

    var connectedCount: Int { workers.reduce(0) { $0 + ($1.status == .connected ? 1 : 0) } }
}
