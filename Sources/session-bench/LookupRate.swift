import RedisClient

/// Cache lookups per second from `tasks` tasks at once, each running the same plain loop a one-task measurement
/// runs (no async call per lookup, which would cost more than the lookup and hide how the cache scales). Task `t`
/// looks up `keys[t]`, in turn.
///
/// - Returns: Lookups per second, all tasks together; `nil` when a lookup missed.
func lookupRate<Key: Sendable>(
    tasks: Int, lookups: Int, keys: [[Key]], _ lookup: @escaping @Sendable (Key) -> Bool
) async -> Double? {
    let perTask = lookups / tasks
    let started = ContinuousClock.now
    let found = await withTaskGroup(of: Int.self) { group in
        for task in 0..<tasks {
            group.addTask {
                let mine = keys[task % keys.count]
                var found = 0
                for index in 0..<perTask where lookup(mine[index % mine.count]) { found += 1 }
                return found
            }
        }
        return await group.reduce(0, +)
    }
    let elapsed = (ContinuousClock.now - started).seconds
    return found == perTask * tasks ? Double(found) / elapsed : nil
}
