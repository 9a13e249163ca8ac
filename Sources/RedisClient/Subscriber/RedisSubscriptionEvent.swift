/// A message published on a channel the subscriber listens to.
public struct RedisPubSubMessage: Sendable, Hashable {
    /// The channel it was published on.
    public var channel: String
    /// The pattern that matched, for a `PSUBSCRIBE` subscription.
    public var pattern: String?
    /// The payload, binary-safe.
    public var payload: [UInt8]

    /// Creates a message.
    public init(channel: String, pattern: String? = nil, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}

/// What a ``RedisSubscription`` yields: messages, and the connection's state changes that matter to consumers.
///
/// Pub/sub is at-most-once: while the connection is down, messages published are lost. The stream says so
/// explicitly: ``disconnected(_:)`` when the connection is lost, then ``resubscribed`` once every subscription is
/// confirmed again. A consumer that caches state derived from messages must treat ``resubscribed`` as "anything
/// may have changed" (and should stop trusting that state at ``disconnected(_:)``).
public enum RedisSubscriptionEvent: Sendable, Hashable {
    /// Every channel and pattern is subscribed, for the first time.
    case subscribed
    /// A message arrived.
    case message(RedisPubSubMessage)
    /// The connection was lost or could not be established; messages published from now on may be missed.
    /// Yielded once per outage, not once per reconnect attempt.
    case disconnected(RedisError)
    /// Subscribed again after a gap: messages published during the gap were missed.
    case resubscribed
}

/// The events of one subscription (see ``RedisSubscriber/subscribe(to:patterns:)``). It never throws: connection
/// trouble is ``RedisSubscriptionEvent/disconnected(_:)``, and the subscription keeps trying to come back.
public typealias RedisSubscription = RedisEventStream<RedisSubscriptionEvent>

extension RedisSubscriptionEvent {
    /// What a subscriber loop's output means to a consumer; `nil` for what it does not report.
    init?(_ output: SubscriberLoop.Output) {
        switch output {
        case .subscribed(let again): self = again ? .resubscribed : .subscribed
        case .message(let message): self = .message(message)
        case .disconnected(let error): self = .disconnected(error)
        case .invalidated, .heartbeat: return nil  // only a tracking loop reports the former; nobody wants the latter
        }
    }
}
