/// What one dedicated subscriber connection reports, as an `AsyncSequence` that never throws: connection trouble is
/// an element (a `disconnected` case), and the connection keeps trying to come back. Ending the iteration closes the
/// connection and ends its thread.
///
/// ``RedisSubscription`` yields ``RedisSubscriptionEvent``s and ``RedisInvalidations`` yields ``RedisInvalidation``s.
public struct RedisEventStream<Element: Sendable>: AsyncSequence, Sendable {
    let stream: AsyncStream<SubscriberLoop.Output>
    /// The name of the thread serving this stream.
    let threadName: String
    let translate: @Sendable (SubscriberLoop.Output) -> Element?

    /// Iterates the stream: each output of the subscriber becomes zero or one element.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<SubscriberLoop.Output>.AsyncIterator
        let translate: @Sendable (SubscriberLoop.Output) -> Element?

        public mutating func next() async -> Element? { await next(isolation: nil) }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
            while let output = await base.next(isolation: actor) {
                if let element = translate(output) { return element }
            }
            return nil
        }
    }

    /// The events of `other`, each turned into zero or one of this stream's.
    package init<Other>(_ other: RedisEventStream<Other>, _ transform: @escaping @Sendable (Other) -> Element?) {
        let translate = other.translate
        self.init(stream: other.stream, threadName: other.threadName) { output in translate(output).flatMap(transform) }
    }

    init(
        stream: AsyncStream<SubscriberLoop.Output>, threadName: String,
        translate: @escaping @Sendable (SubscriberLoop.Output) -> Element?
    ) {
        self.stream = stream
        self.threadName = threadName
        self.translate = translate
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), translate: translate)
    }
}
