/// What ``RedisInvalidations`` yields: whether tracking is on, and which keys changed.
public enum RedisInvalidation: Sendable, Hashable {
    /// Tracking is on (the first time, or again after a gap): every change from now on is reported. Whatever was
    /// cached before this may have changed unseen.
    case tracking
    /// These keys were written, deleted or expired, by any client (binary-safe key names).
    case keys([[UInt8]])
    /// The database was flushed: every key may have changed.
    case all
    /// The tracking connection was lost or could not be established: changes from now on go unreported until the
    /// next ``tracking``. Yielded once per outage.
    case disconnected(RedisError)
}

/// The changes to tracked keys (see ``RedisSubscriber/trackInvalidations(prefixes:)``). It never throws:
/// connection trouble is ``RedisInvalidation/disconnected(_:)``, and the connection keeps trying to come back.
public typealias RedisInvalidations = RedisEventStream<RedisInvalidation>

extension RedisInvalidation {
    /// What a tracking loop's output means to a consumer; `nil` for what it does not report.
    init?(_ output: SubscriberLoop.Output) {
        switch output {
        case .subscribed: self = .tracking
        case .invalidated(let keys): self = keys.map(RedisInvalidation.keys) ?? .all
        case .disconnected(let error): self = .disconnected(error)
        case .message, .heartbeat: return nil  // a tracking loop subscribes to nothing else
        }
    }
}
