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

/// The changes to tracked keys, as an `AsyncSequence` (see ``RedisSubscriber/trackInvalidations(prefixes:)``).
/// It never throws: connection trouble is ``RedisInvalidation/disconnected(_:)``, and the connection keeps trying
/// to come back.
public struct RedisInvalidations: AsyncSequence, Sendable {
    public typealias Element = RedisInvalidation

    let stream: AsyncStream<SubscriberLoop.Output>
    /// The name of the thread serving this sequence.
    let threadName: String

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: TranslatingIterator<AsyncStream<SubscriberLoop.Output>.AsyncIterator, RedisInvalidation>

        public mutating func next() async -> RedisInvalidation? { await base.next(isolation: nil) }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> RedisInvalidation? {
            await base.next(isolation: actor)
        }

        @Sendable static func translate(_ output: SubscriberLoop.Output) -> RedisInvalidation? {
            switch output {
            case .subscribed: .tracking
            case .invalidated(let keys): keys.map(RedisInvalidation.keys) ?? .all
            case .disconnected(let error): .disconnected(error)
            case .message: nil  // a tracking loop subscribes to nothing else
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: TranslatingIterator(stream.makeAsyncIterator(), AsyncIterator.translate))
    }
}
