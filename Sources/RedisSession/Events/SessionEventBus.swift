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

    /// Publishes an event.
    ///
    /// - Returns: How many subscribers received it.
    @discardableResult
    public func publish(_ event: SessionEvent) async throws -> Int {
        try await client.send("PUBLISH", channel, event.encoded()).int ?? 0
    }

    /// Subscribes on a dedicated connection. The subscription ends when the iteration ends.
    public func subscribe() -> SessionEventSubscription {
        SessionEventSubscription(base: subscriber.subscribe(to: [channel]))
    }
}

/// Decoded session events and the subscriber's connection state, as an `AsyncSequence`.
public struct SessionEventSubscription: AsyncSequence, Sendable {
    public typealias Element = SessionEventBus.Notification

    let base: RedisSubscription

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: RedisSubscription.AsyncIterator

        public mutating func next() async -> SessionEventBus.Notification? {
            guard let event = await base.next() else { return nil }
            return Self.translate(event)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> SessionEventBus.Notification? {
            guard let event = await base.next(isolation: actor) else { return nil }
            return Self.translate(event)
        }

        static func translate(_ event: RedisSubscriptionEvent) -> SessionEventBus.Notification {
            switch event {
            case .subscribed: .subscribed
            case .resubscribed: .resubscribed
            case .disconnected(let error): .disconnected(error)
            case .message(let message):
                switch SessionEvent.decode(message.payload) {
                case .success(let event): .event(event)
                case .failure(let malformed): .malformed(malformed)
                }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator()) }
}
