import RedisClient
import Synchronization

/// How many replicas the master has, asked (`ROLE`) at most once a second.
///
/// `WAIT` on a master without replicas blocks for its whole timeout, so a store must know whether there is anything
/// to wait for before it sends one. A count up to a second old is good enough. A replica that just appeared is waited
/// for from the next refresh on, and one that just left costs one `WAIT` timeout before the count is asked again.
final class ReplicaCount: Sendable {
    private let known = Mutex<(count: Int, checkedAt: ContinuousClock.Instant?)>((0, nil))
    private static let maximumAge: Duration = .seconds(1)

    /// The count, refreshed when older than a second.
    func current(on client: RedisClient) async throws(RedisError) -> Int {
        let now = ContinuousClock.now
        if let cached = known.withLock({ state -> Int? in
            guard let checkedAt = state.checkedAt, now - checkedAt < Self.maximumAge else { return nil }
            return state.count
        }) {
            return cached
        }
        return try await refresh(on: client)
    }

    /// Asks the master now.
    @discardableResult
    func refresh(on client: RedisClient) async throws(RedisError) -> Int {
        let count = try await client.connectedReplicaCount()
        known.withLock { $0 = (count, ContinuousClock.now) }
        return count
    }
}
