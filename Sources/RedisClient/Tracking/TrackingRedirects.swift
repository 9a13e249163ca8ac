import Synchronization

/// Where a client's pool connections send their key-tracking reports in holders mode: the client ID of the tracker
/// connection on each node.
///
/// In Redis' default tracking mode the server remembers which connection read which key, and reports a change only
/// to the connections that read it, through their redirect target. So every pool connection of the store's client
/// turns tracking on with `CLIENT TRACKING ON REDIRECT <tracker id> OPTIN`, and only reads preceded by
/// `CLIENT CACHING YES` are remembered.
///
/// RESP2 loses reports silently in two ways, and this is where both are caught:
/// - **The tracker reconnects** under a new client ID. The tracker ``point(_:at:)``s here before it says it is
///   tracking; every connection to that node re-points before its next batch, and idle ones are woken to re-point
///   at once, so `CLIENT LIST` shows no broken redirect (flag `R`).
/// - **A pool connection that had tracking on drops.** Redis forgets what it read and tells nobody
///   (redis/redis#11767). The connection's thread calls ``trackedConnectionLost()`` as soon as it sees the loss, and
///   the cache drops everything it loaded (as redis-py, Jedis and rueidis do).
package final class TrackingRedirects: Sendable {
    typealias Endpoint = RedisConfiguration.Endpoint

    private struct State {
        var targets: [Endpoint: Int] = [:]
        var wakers: [@Sendable () -> Void] = []
        var lossObservers: [Int: @Sendable () -> Void] = [:]
        var nextObserver = 0
        var claimed = false
    }

    private let state = Mutex(State())
    /// Moves on with every ``point(_:at:)``, so a connection thread notices a new target with one atomic load per
    /// batch.
    private let changes = Atomic<UInt64>(0)

    package init() {}

    // MARK: The tracker's side

    /// The tracker on `endpoint` now has `clientID`: connections to that node re-point before their next batch, and
    /// idle ones are woken to do it now. Returns once every connection will see it.
    func point(_ endpoint: Endpoint, at clientID: Int) {
        let wakers = state.withLock { state in
            state.targets[endpoint] = clientID
            return state.wakers
        }
        changes.add(1, ordering: .releasing)
        for wake in wakers { wake() }
    }

    // MARK: The connections' side

    /// Changes so far; a connection compares it with what it saw last.
    var version: UInt64 { changes.load(ordering: .acquiring) }

    /// The tracker's client ID on `endpoint`, if one is tracking there.
    func target(for endpoint: Endpoint) -> Int? { state.withLock { $0.targets[endpoint] } }

    /// Called (on a connection thread) whenever ``point(_:at:)`` names a new target.
    func addWaker(_ wake: @escaping @Sendable () -> Void) { state.withLock { $0.wakers.append(wake) } }

    /// A connection that had tracking on was lost: whatever it read is no longer tracked.
    func trackedConnectionLost() {
        let observers = state.withLock { Array($0.lossObservers.values) }
        for observer in observers { observer() }
    }

    // MARK: The cache's side

    /// Makes the caller the one cache whose tracker the client's connections point at; `false` when another holds
    /// it. Two trackers on one client would take each other's reports: each store that caches in holders mode needs
    /// a client of its own.
    package func claim() -> Bool {
        state.withLock { state in
            if state.claimed { return false }
            state.claimed = true
            return true
        }
    }

    /// Gives up what ``claim()`` took.
    package func release() { state.withLock { $0.claimed = false } }

    /// Calls `observer` whenever a connection that had tracking on is lost; returns a token for
    /// ``removeLossObserver(_:)``.
    package func addLossObserver(_ observer: @escaping @Sendable () -> Void) -> Int {
        state.withLock { state in
            state.nextObserver += 1
            state.lossObservers[state.nextObserver] = observer
            return state.nextObserver
        }
    }

    package func removeLossObserver(_ token: Int) { _ = state.withLock { $0.lossObservers.removeValue(forKey: token) } }
}
