public import RedisClient

/// Publishes and subscribes to session events on the Redis channel `<prefix>events`.
///
/// ```swift
/// let bus = SessionEventBus(client: client, keyPrefix: "rsess:")
/// try await bus.publish(SessionEvent(kind: .loggedOut, user: "alice", version: 3, origin: "web-1"))
/// for await notification in bus.subscribe() { ... }
/// ```
///
/// Pub/sub is at-most-once: the subscription reports its gaps (``Notification/disconnected(_:)`` then
/// ``Notification/resubscribed``) so consumers can resynchronise.
public struct SessionEventBus: Sendable {
    /// What a subscription yields.
    public enum Notification: Sendable, Hashable {
        /// Subscribed for the first time: from now on events are delivered.
        case subscribed
        /// An event arrived.
        case event(SessionEvent)
        /// A payload on the channel was not a usable event; it was skipped.
        case malformed(MalformedEvent)
        /// The subscriber lost its connection: events published from now on may be missed.
        case disconnected(RedisError)
        /// Subscribed again after a gap: events published during the gap were missed.
        case resubscribed
    }

    /// The client used to publish.
    public let client: RedisClient
    /// The channel: `<prefix>events`.
    public let channel: String
    /// The subscriber's ping schedule.
    public var subscriber: RedisSubscriber

    /// Creates a bus.
    ///
    /// - Parameters:
    ///   - client: The pool to publish on; its configuration also opens the subscriber connection.
    ///   - keyPrefix: The deployment's key prefix (default `rsess:`).
    ///   - subscriberName: The `CLIENT SETNAME` of the subscriber connection, so operators can find it.
    public init(client: RedisClient, keyPrefix: String = "rsess:", subscriberName: String? = nil) {
        self.client = client
        self.channel = keyPrefix + "events"
        var configuration = client.configuration
        configuration.clientName = subscriberName ?? configuration.clientName.map { $0 + "-sub" }
        self.subscriber = RedisSubscriber(configuration: configuration)
    }

    /// An event to publish from inside a write, once the write knows the version: what
    /// ``UserSettingsStore/write(userID:timezone:announcing:)`` takes, so the event goes out if and only if the
    /// write happened. Made by ``announcement(_:user:timezone:origin:)``.
    public struct Announcement: Sendable, Hashable {
        /// The channel it goes to.
        public let channel: String
        /// ``SessionEvent/encoded()`` before and after the version's digits.
        let head: [UInt8]
        let tail: [UInt8]
    }

    /// Publishes an event.
    ///
    /// - Returns: How many subscribers received it.
    @discardableResult
    public func publish(_ event: SessionEvent) async throws(RedisError) -> Int {
        try await client.send("PUBLISH", channel, event.encoded()).int ?? 0
    }

    /// The event a write publishes on this bus with the version it writes, stamped now.
    public func announcement(_ kind: SessionEvent.Kind, user: String, timezone: String?, origin: String)
        -> Announcement
    {
        let (head, tail) = SessionEvent(kind: kind, user: user, timezone: timezone, version: 0, origin: origin)
            .encodedAroundVersion()
        return Announcement(channel: channel, head: head, tail: tail)
    }

    /// Subscribes on a dedicated connection. The subscription ends when the iteration ends.
    public func subscribe() -> SessionEventSubscription {
        SessionEventSubscription(subscriber.subscribe(to: [channel]), Notification.init)
    }
}

/// Decoded session events and the subscriber's connection state, as an `AsyncSequence`.
public typealias SessionEventSubscription = RedisEventStream<SessionEventBus.Notification>

extension SessionEventBus.Notification {
    /// What a subscription event on the events channel means: a decoded event, or a payload that is not one.
    init(_ event: RedisSubscriptionEvent) {
        switch event {
        case .subscribed: self = .subscribed
        case .resubscribed: self = .resubscribed
        case .disconnected(let error): self = .disconnected(error)
        case .message(let message):
            switch SessionEvent.decode(message.payload) {
            case .success(let event): self = .event(event)
            case .failure(let malformed): self = .malformed(malformed)
            }
        }
    }
}
