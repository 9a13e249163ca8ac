/// Where a ``RedisEventStream``'s outputs come from: one loop's stream, or a cluster's fan-in, which runs in the
/// iterating task.
enum RedisEventSource: Sendable {
    case stream(AsyncStream<SubscriberLoop.Output>)
    case cluster(ClusterSubscription)
}

/// What one dedicated subscriber connection reports, as an `AsyncSequence` that never throws: connection trouble is
/// an element (a `disconnected` case), and the connection keeps trying to come back. Ending the iteration closes the
/// connection and ends its thread.
///
/// ``RedisSubscription`` yields ``RedisSubscriptionEvent``s and ``RedisInvalidations`` yields ``RedisInvalidation``s.
public struct RedisEventStream<Element: Sendable>: AsyncSequence, Sendable {
    let source: RedisEventSource
    /// The name of the thread serving this stream.
    let threadName: String
    let translate: @Sendable (SubscriberLoop.Output) -> Element?

    /// Iterates the stream: each output of the subscriber becomes zero or one element.
    public struct AsyncIterator: AsyncIteratorProtocol {
        enum Base {
            case stream(AsyncStream<SubscriberLoop.Output>.AsyncIterator)
            case cluster(ClusterSubscription.FanIn)
        }

        var base: Base
        let translate: @Sendable (SubscriberLoop.Output) -> Element?

        public mutating func next() async -> Element? { await next(isolation: nil) }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
            while let output = await nextOutput(isolation: actor) {
                if let element = translate(output) { return element }
            }
            return nil
        }

        private mutating func nextOutput(isolation actor: isolated (any Actor)?) async -> SubscriberLoop.Output? {
            switch base {
            case .stream(var iterator):
                let output = await iterator.next(isolation: actor)
                base = .stream(iterator)
                return output
            case .cluster(let fanIn):
                return await fanIn.next(isolation: actor)
            }
        }
    }

    /// The events of `other`, each turned into zero or one of this stream's.
    package init<Other>(_ other: RedisEventStream<Other>, _ transform: @escaping @Sendable (Other) -> Element?) {
        let translate = other.translate
        self.init(source: other.source, threadName: other.threadName) { output in translate(output).flatMap(transform) }
    }

    init(
        source: RedisEventSource, threadName: String, translate: @escaping @Sendable (SubscriberLoop.Output) -> Element?
    ) {
        self.source = source
        self.threadName = threadName
        self.translate = translate
    }

    public func makeAsyncIterator() -> AsyncIterator {
        switch source {
        case .stream(let stream): AsyncIterator(base: .stream(stream.makeAsyncIterator()), translate: translate)
        case .cluster(let subscription): AsyncIterator(base: .cluster(subscription.makeFanIn()), translate: translate)
        }
    }
}
