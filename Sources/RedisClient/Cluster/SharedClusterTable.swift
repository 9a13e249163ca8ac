import Synchronization

/// The slot table of one cluster, shared by every client of this process that names the same seeds.
///
/// A `MOVED` seen by the session store's pool must also reach the session cache's trackers, which run on clients
/// of their own: one table and one set of observers per cluster means a redirection seen anywhere is a new generation
/// everywhere, and every cache built on the old one treats it as a gap.
final class SharedClusterTable: Sendable {
    let table: Mutex<ClusterTopology>
    private let observers = Mutex<(next: Int, handlers: [Int: @Sendable (UInt64) -> Void])>((0, [:]))

    private init(seeds: [RedisConfiguration.Endpoint]) {
        self.table = Mutex(ClusterTopology(seeds: seeds))
    }

    private final class WeakBox: Sendable {
        weak let table: SharedClusterTable?
        init(_ table: SharedClusterTable) { self.table = table }
    }

    private static let registry = Mutex<[RedisConfiguration.Cluster: WeakBox]>([:])

    /// The table for these seeds; alive as long as a client holds it.
    static func table(for cluster: RedisConfiguration.Cluster) -> SharedClusterTable {
        registry.withLock { tables in
            if let existing = tables[cluster]?.table { return existing }
            let created = SharedClusterTable(seeds: cluster.seeds)
            tables[cluster] = WeakBox(created)
            return created
        }
    }

    /// Calls `handler` with the new generation whenever the table changes.
    func addObserver(_ handler: @escaping @Sendable (UInt64) -> Void) -> Int {
        observers.withLock {
            $0.next += 1
            $0.handlers[$0.next] = handler
            return $0.next
        }
    }

    func removeObserver(_ id: Int) { _ = observers.withLock { $0.handlers.removeValue(forKey: id) } }

    /// Tells every observer the table changed.
    func notify() {
        let generation = table.withLock { $0.generation }
        let handlers = observers.withLock { Array($0.handlers.values) }
        for handler in handlers { handler(generation) }
    }
}
