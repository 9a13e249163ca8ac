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
    /// A connection that failed, closed or timed out, a client that was closed, or a write that reached a replica:
    /// Redis did not answer this time; it may the next.
    public var isStoreUnavailable: Bool {
        [.connectionFailed, .connectionClosed, .timeout, .notMaster, .closed].contains(code)
    }
}
