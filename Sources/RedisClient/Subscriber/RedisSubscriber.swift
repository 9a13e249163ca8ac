/// Subscribes to Redis pub/sub channels on dedicated connections.
///
/// ```swift
/// let subscriber = RedisSubscriber(configuration: configuration)
/// for try await event in subscriber.subscribe(to: ["rsess:events"]) {
///     switch event {
///     case .message(let message): handle(message.payload)
///     case .disconnected, .resubscribed: resynchronise()
///     case .subscribed: break
///     }
/// }
/// ```
///
/// Each ``subscribe(to:patterns:)`` opens its own connection, owned by its own thread, which waits in `poll(2)` on
/// the socket and a wake-up pipe. A lost connection is re-established with exponential backoff and jitter and every
/// subscription is restored; a `PING` every ``pingInterval`` detects a peer that vanished without closing the
/// socket. Ending the iteration (leaving the loop, or cancelling the consuming task) closes the connection and
/// ends the thread promptly.
public struct RedisSubscriber: Sendable {
    /// Where the server is; its `clientName` names the subscriber connection in `CLIENT LIST`.
    public var configuration: RedisConfiguration
    /// How often the subscriber pings the server.
    public var pingInterval: Duration
    /// How long a `PING` may stay unanswered before the connection is declared dead and replaced.
    public var pingTimeout: Duration

    /// Creates a subscriber.
    ///
    /// - Parameters:
    ///   - configuration: The server to subscribe on.
    ///   - pingInterval: How often to ping the server (default 1 s).
    ///   - pingTimeout: How long an unanswered ping is tolerated (default 2 s).
    public init(
        configuration: RedisConfiguration,
        pingInterval: Duration = .seconds(1),
        pingTimeout: Duration = .seconds(2)
    ) {
        precondition(pingInterval > .zero && pingTimeout > .zero, "ping interval and timeout must be positive")
        self.configuration = configuration
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
    }

    /// Subscribes to channels and patterns on a new dedicated connection.
    ///
    /// - Parameters:
    ///   - channels: Channel names for `SUBSCRIBE`.
    ///   - patterns: Glob patterns for `PSUBSCRIBE`.
    /// - Returns: The events; the connection lives as long as the iteration.
    public func subscribe(to channels: [String], patterns: [String] = []) -> RedisSubscription {
        let (stream, continuation) = AsyncStream.makeStream(of: RedisSubscriptionEvent.self)
        let loop = SubscriberLoop(
            subscriber: self, channels: channels, patterns: patterns, continuation: continuation)
        continuation.onTermination = { _ in loop.stop() }
        loop.start()
        return RedisSubscription(stream: stream, threadName: loop.threadName)
    }
}

/// The events of one subscription, as an `AsyncSequence`. It never throws: connection trouble is reported as
/// ``RedisSubscriptionEvent/disconnected(_:)`` and the subscription keeps trying to come back.
public struct RedisSubscription: AsyncSequence, Sendable {
    public typealias Element = RedisSubscriptionEvent

    let stream: AsyncStream<RedisSubscriptionEvent>
    /// The name of the thread serving this subscription.
    let threadName: String

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<RedisSubscriptionEvent>.AsyncIterator

        public mutating func next() async -> RedisSubscriptionEvent? { await base.next() }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> RedisSubscriptionEvent? {
            await base.next(isolation: actor)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: stream.makeAsyncIterator()) }
}
