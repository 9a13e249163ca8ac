public import RedisClient

/// An error that can say whether the store behind it could not answer: every ``CodedError``, and `RedisError`.
///
/// A framework integration asks ``isStoreUnavailable(_:)`` of whatever a request handler threw, so a flow's or a
/// store's "Redis is unreachable" is a `503` wherever it comes from.
public protocol StoreAvailabilityReporting: Error {
    /// Whether the store could not be reached or did not answer in time.
    var isStoreUnavailable: Bool { get }
}

/// Whether `error` says that the store could not answer (a `503`, not a logout), whichever layer threw it.
public func isStoreUnavailable(_ error: any Error) -> Bool {
    (error as? any StoreAvailabilityReporting)?.isStoreUnavailable ?? false
}

extension RedisError: StoreAvailabilityReporting {
    /// Redis did not answer this time, and may the next: every failure to get a reply (a connection that failed,
    /// closed or timed out, a closed client, a replica), and the server errors that mean "not now" (out of memory,
    /// read-only, loading, busy, a failover or a cluster in progress): so a failure to reach Redis is a 503 whether a
    /// store (which maps it to `storeUnavailable`) or the application's own call met it. Other server errors
    /// (`WRONGTYPE`, `ERR` for a malformed command) are the caller's to fix, not a 503.
    public var isStoreUnavailable: Bool {
        guard let prefix = serverErrorPrefix else { return true }
        return Self.notNowPrefixes.contains(prefix)
    }

    private static let notNowPrefixes: Set<Substring> = [
        "OOM", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MISCONF", "NOREPLICAS",
    ]
}
