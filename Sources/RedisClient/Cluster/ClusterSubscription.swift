import Synchronization

/// A subscription or a tracker on a Redis Cluster: one ``SubscriberLoop`` per primary, merged by the task that
/// iterates it (``FanIn``), so the library starts no task for it.
///
/// - **Pub/sub.** A classic `PUBLISH` reaches every node. One subscriber on the publishing node hears it in under a
///   millisecond; one on another node hears it through the cluster bus, 27-33 ms at p99 as measured here. So this
///   subscribes on every primary and passes on the first copy of each message, dropping the later copies.
/// - **Tracking.** Tracking is per node, and under RESP2 the redirect target must be on the same node. So there is
///   one self-redirected tracker per primary.
/// - **Gaps.** The merged stream is subscribed only while every primary of the current table has a confirmed
///   connection. Losing any of them, or a table with other primaries (a failover, a node added or removed), is a
///   gap: `.disconnected`, then, once every loop of the new table is up, `.subscribed(again: true)`. A cache built on
///   it starts empty after each gap. A reshard between the same primaries is not a gap: both ends report the keys
///   that migrate.
struct ClusterSubscription: Sendable {
    let subscriber: RedisSubscriber
    let channels: [String]
    let patterns: [String]
    let tracking: SubscriberLoop.KeyTracking?
    let threadName = "rsub-cluster"

    /// A fan-in for one iteration: it subscribes when first asked for an output and ends when its iterator goes.
    func makeFanIn() -> FanIn { FanIn(subscription: self) }

    private enum Event: Sendable {
        case child(Int, SubscriberLoop.Output)
        case topologyChanged
    }

    /// One iteration's subscription, run by the task that iterates it: no task of its own. Its state lives in this
    /// class, which the iterator holds; when the iterator goes, so do the loops.
    final class FanIn {
        private let subscription: ClusterSubscription
        /// Reads the slot table (shared by every client of the process for this cluster).
        private let client: RedisClient
        /// The gaps and the backoff of the whole subscription: one per primary is each child loop's own.
        private var machine: SubscriberStateMachine
        private var round: Round?
        private var pending: [SubscriberLoop.Output] = []
        private var ended = false

        /// The loops of one set of primaries, merged into one stream.
        private struct Round {
            let primaries: [RedisConfiguration.Endpoint]
            let loops: [SubscriberLoop]
            var events: AsyncStream<Event>.AsyncIterator
            let sink: AsyncStream<Event>.Continuation
            let observer: Int?
            var subscribed = Set<Int>()
            var recent: RecentMessages
        }

        init(subscription: ClusterSubscription) {
            self.subscription = subscription
            self.client = RedisClient(configuration: subscription.subscriber.configuration)
            self.machine = SubscriberStateMachine(
                pingInterval: subscription.subscriber.pingInterval, pingTimeout: subscription.subscriber.pingTimeout,
                backoff: subscription.subscriber.configuration.reconnectBackoff)
        }

        deinit { endRound() }

        /// The next output, subscribing (again) as needed; `nil` once the iterating task is cancelled.
        func next(isolation actor: isolated (any Actor)?) async -> SubscriberLoop.Output? {
            while true {
                if !pending.isEmpty { return pending.removeFirst() }
                if ended || Task.isCancelled {
                    ended = true
                    endRound()
                    return nil
                }
                guard round != nil else {
                    await startRound(isolation: actor)
                    continue
                }
                guard let event = await round?.events.next(isolation: actor) else {
                    // Only cancellation ends the merged stream while the round lives.
                    ended = true
                    endRound()
                    return nil
                }
                await handle(event, isolation: actor)
            }
        }

        private func startRound(isolation actor: isolated (any Actor)?) async {
            let primaries: [RedisConfiguration.Endpoint]
            do throws(RedisError) {
                primaries = try await client.router?.primaries().nodes ?? []
                guard !primaries.isEmpty else { throw RedisError(.connectionFailed, "the cluster has no primaries") }
            } catch {
                let reconnect = machine.sessionEnded(error)
                if let report = reconnect.report { pending.append(.disconnected(report)) }
                if let delay = reconnect.delay { try? await Task.sleep(for: delay) }
                return
            }
            let (events, sink) = AsyncStream.makeStream(of: Event.self)
            let observer = client.router?.addObserver { _ in sink.yield(.topologyChanged) }
            var loops: [SubscriberLoop] = []
            for (index, primary) in primaries.enumerated() {
                let configuration = subscription.subscriber.configuration.aimed(at: primary)
                var nodeSubscriber = subscription.subscriber
                nodeSubscriber.configuration = configuration
                // The loop's thread yields straight into the merged stream, tagged: no task forwards it.
                let loop = SubscriberLoop(
                    subscriber: nodeSubscriber, channels: subscription.channels, patterns: subscription.patterns,
                    tracking: subscription.tracking,
                    emit: { output in sink.yield(.child(index, output)) })
                loops.append(loop)
                loop.start()
            }
            round = Round(
                primaries: primaries, loops: loops, events: events.makeAsyncIterator(), sink: sink, observer: observer,
                recent: RecentMessages(copies: primaries.count))
        }

        private func handle(_ event: Event, isolation actor: isolated (any Actor)?) async {
            guard var current = round else { return }
            switch event {
            case .topologyChanged:
                // A slot moving between the same primaries needs nothing: source and destination both report the keys
                // that migrate. A new or lost primary (a failover, a node added) moves the loops.
                if client.router?.currentPrimaries != Set(current.primaries) {
                    endRound()
                    if let report = machine.gap(RedisError(.connectionClosed, "the cluster's slot table changed")) {
                        pending.append(.disconnected(report))
                    }
                    return
                }
            case .child(let index, .subscribed):
                current.subscribed.insert(index)
                if current.subscribed.count == current.primaries.count {
                    pending.append(.subscribed(again: machine.subscribed()))
                }
            case .child(let index, .disconnected(let error)):
                current.subscribed.remove(index)
                if let report = machine.gap(error) { pending.append(.disconnected(report)) }
            case .child(_, .message(let message)):
                if current.recent.isFirstCopy(message) { pending.append(.message(message)) }
            case .child(_, .invalidated(let keys)):
                pending.append(.invalidated(keys))
            case .child(_, .heartbeat):
                // The loops' pings are this fan-in's clock: read the slot table in this task when a read is due, so
                // a new primary is found without a task of the library's own.
                round = current
                await client.refreshTopologyIfDue()
                return
            }
            round = current
        }

        private func endRound() {
            guard let current = round else { return }
            round = nil
            if let observer = current.observer { client.router?.removeObserver(observer) }
            for loop in current.loops { loop.stop() }
            current.sink.finish()
        }
    }
}

/// Which messages were already passed on: each arrives once per primary, and only the first copy counts.
struct RecentMessages {
    private let copies: Int
    private var remaining: [Int: Int] = [:]
    private var order: [Int] = []
    private static let limit = 10_000

    init(copies: Int) { self.copies = copies }

    /// Whether this is the first copy of `message`; later copies (up to one per other primary) are not.
    mutating func isFirstCopy(_ message: RedisPubSubMessage) -> Bool {
        var hasher = Hasher()
        hasher.combine(message.channel)
        hasher.combine(message.pattern)
        hasher.combine(message.payload)
        let key = hasher.finalize()
        if let left = remaining[key] {
            if left <= 1 { remaining[key] = nil } else { remaining[key] = left - 1 }
            return false
        }
        guard copies > 1 else { return true }
        remaining[key] = copies - 1
        order.append(key)
        if order.count > Self.limit {
            // Copies that never came (a node was down) must not hold memory forever.
            for old in order.prefix(order.count - Self.limit) { remaining[old] = nil }
            order.removeFirst(order.count - Self.limit)
        }
        return true
    }
}
