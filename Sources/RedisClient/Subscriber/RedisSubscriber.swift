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
        let (source, threadName) = startLoop(channels: channels, patterns: patterns, tracking: nil)
        return RedisSubscription(source: source, threadName: threadName, translate: RedisSubscriptionEvent.init)
    }

    /// Follows changes to keys under the given prefixes, made by any client: Redis' server-assisted client-side
    /// caching in broadcast mode (`CLIENT TRACKING ON BCAST PREFIX ...`, Redis 6 or later), on a new dedicated
    /// connection that receives its own invalidations.
    ///
    /// A cache built on it may serve an entry only while the sequence says ``RedisInvalidation/tracking``: from
    /// ``RedisInvalidation/disconnected(_:)`` on, changes go unreported until tracking is on again.
    ///
    /// - Parameter prefixes: Key prefixes to follow; every key that starts with one of them is reported when it is
    ///   written, deleted or expires. An empty list follows every key.
    /// - Returns: The invalidations; the connection lives as long as the iteration.
    public func trackInvalidations(prefixes: [String]) -> RedisInvalidations {
        let (source, threadName) = startLoop(channels: [], patterns: [], tracking: .broadcast(prefixes: prefixes))
        return RedisInvalidations(source: source, threadName: threadName, translate: RedisInvalidation.init)
    }

    /// Receives the reports of the keys that `client`'s connections read with `CLIENT CACHING YES`: Redis' default
    /// tracking mode, where the server remembers who read what and reports a change only to those holders.
    ///
    /// The subscriber's connection (one per primary on a cluster) subscribes to the invalidation channel and tells
    /// `client` its client ID; every connection of `client` then turns tracking on with
    /// `CLIENT TRACKING ON REDIRECT <that id> OPTIN` before its next batch. A cache built on it must also drop what
    /// it holds when one of `client`'s tracking connections is lost (``TrackingRedirects/addLossObserver(_:)``):
    /// Redis forgets that connection's reads without telling anyone.
    package func trackInvalidations(readBy client: RedisClient) -> RedisInvalidations {
        let (source, threadName) = startLoop(
            channels: [], patterns: [], tracking: .holders(client.trackingRedirects))
        return RedisInvalidations(source: source, threadName: threadName, translate: RedisInvalidation.init)
    }

    private func startLoop(
        channels: [String], patterns: [String], tracking: SubscriberLoop.KeyTracking?
    ) -> (RedisEventSource, String) {
        // A cluster's subscription is one loop per primary, merged by the task that iterates it; every other topology
        // has one loop, on the node it resolves, feeding a stream.
        if configuration.cluster != nil {
            let subscription = ClusterSubscription(
                subscriber: self, channels: channels, patterns: patterns, tracking: tracking)
            return (.cluster(subscription), subscription.threadName)
        }
        let (stream, continuation) = AsyncStream.makeStream(of: SubscriberLoop.Output.self)
        let loop = SubscriberLoop(
            subscriber: self, channels: channels, patterns: patterns, tracking: tracking,
            continuation: continuation)
        continuation.onTermination = { _ in loop.stop() }
        loop.start()
        return (.stream(stream), loop.threadName)
    }
}
