internal import CHiredis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The thread behind one ``RedisSubscription`` or ``RedisInvalidations``: connect, subscribe (after turning key
/// tracking on, for the latter), read messages, ping, reconnect.
///
/// It waits in `poll(2)` on the socket and on a wake-up pipe, and calls into hiredis only when the socket is
/// readable, so a stop request never has to interrupt a blocked hiredis call and the context never leaves this
/// thread.
final class SubscriberLoop: Sendable {
    /// The key tracking whose reports a loop receives.
    enum KeyTracking: Sendable {
        /// Broadcast mode on the loop's own connection (`CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX ...`):
        /// every change under the prefixes, by anyone.
        case broadcast(prefixes: [String])
        /// Default mode, on the pool's connections (`OPTIN`, redirected here): changes to the keys this instance's
        /// connections read with `CLIENT CACHING YES`. The loop tells `redirects` its client ID once subscribed.
        case holders(TrackingRedirects)
    }

    /// What the loop reports; the public sequences translate it.
    enum Output: Sendable {
        /// Every subscription is confirmed; `again` after a gap.
        case subscribed(again: Bool)
        case message(RedisPubSubMessage)
        /// Keys that changed, or `nil` when the whole database was flushed (tracking only).
        case invalidated([[UInt8]]?)
        case disconnected(RedisError)
        /// The server answered a `PING`: the connection is alive. Public sequences drop it; a cluster's fan-in uses
        /// it as its clock.
        case heartbeat
    }

    /// The channel on which Redis redirects key-tracking invalidations (RESP2).
    static let invalidationChannel = "__redis__:invalidate"

    private let subscriber: RedisSubscriber
    private let channels: [String]
    private let patterns: [String]
    /// Which key tracking the connection receives the reports of, or `nil` for a plain subscription.
    private let tracking: KeyTracking?
    /// Where the outputs go: a stream's continuation, or a cluster's merged stream.
    private let emit: @Sendable (Output) -> Void
    /// Called once when the loop ends for good.
    private let finished: @Sendable () -> Void
    /// `nil` only when the system had no descriptor left; the loop then reports that and ends.
    private let wake: WakeSignal?
    private let stopped = Atomic<Bool>(false)
    /// The thread's name, `rsub<N>`, unique per subscription so tests can see it go.
    let threadName: String
    private static let instances = Atomic<Int>(0)

    convenience init(
        subscriber: RedisSubscriber, channels: [String], patterns: [String], tracking: KeyTracking? = nil,
        continuation: AsyncStream<Output>.Continuation
    ) {
        self.init(
            subscriber: subscriber, channels: channels, patterns: patterns, tracking: tracking,
            emit: { output in continuation.yield(output) }, finished: { continuation.finish() })
    }

    /// A loop whose outputs go to `emit`; `finished` is called once when it ends.
    init(
        subscriber: RedisSubscriber, channels: [String], patterns: [String], tracking: KeyTracking? = nil,
        emit: @escaping @Sendable (Output) -> Void, finished: @escaping @Sendable () -> Void = {}
    ) {
        self.subscriber = subscriber
        self.channels = tracking == nil ? channels : channels + [Self.invalidationChannel]
        self.patterns = patterns
        self.tracking = tracking
        self.emit = emit
        self.finished = finished
        self.threadName = "rsub\(Self.instances.wrappingAdd(1, ordering: .relaxed).oldValue % 1_000_000)"
        self.wake = WakeSignal()
    }

    func start() {
        guard wake != nil else {
            emit(.disconnected(RedisError(.connectionFailed, "cannot create the subscriber's pipe")))
            finished()
            return
        }
        let started = spawnThread(name: threadName) { [self] in run() }
        if !started {
            emit(.disconnected(RedisError(.connectionFailed, "cannot start the subscriber thread")))
            finished()
        }
    }

    /// Ends the current connection or backoff at once without stopping: the master changed, so the next attempt
    /// goes to the new one now.
    func nudge() {
        wake?.signal()
    }

    /// Asks the thread to stop; returns at once.
    func stop() {
        stopped.store(true, ordering: .releasing)
        wake?.signal()
    }

    private var isStopped: Bool { stopped.load(ordering: .acquiring) }

    private func run() {
        guard let wake else { return }
        var machine = SubscriberStateMachine(
            pingInterval: subscriber.pingInterval, pingTimeout: subscriber.pingTimeout,
            backoff: subscriber.configuration.reconnectBackoff)
        // Through Sentinel, the subscription (and with it key tracking) follows the master: a change shuts the
        // socket, which is a gap the caches see, and the next connection goes to the new master.
        let monitor = SentinelMonitor.acquire(for: subscriber.configuration)
        let connector = NodeConnector(configuration: subscriber.configuration, resolver: monitor ?? FixedNode())
        // The loop waits on its socket and the wake-up pipe together, so a nudge ends the session at once.
        let observer = monitor?.addObserver { [self] in nudge() }
        defer {
            if let monitor, let observer { monitor.removeObserver(observer) }
            monitor?.release()
        }

        while !isStopped {
            let error: RedisError
            do throws(RedisError) {
                let (connection, node) = try connector.connect()
                error = session(
                    on: connection, endpoint: node.endpoint ?? subscriber.configuration.endpoint, wake: wake,
                    machine: &machine)
            } catch let connectError {
                error = connectError
            }
            if isStopped { break }
            let reconnect = machine.sessionEnded(error)
            if let report = reconnect.report { emit(.disconnected(report)) }
            // A nudge during the backoff ends it: retry now.
            if let delay = reconnect.delay {
                _ = wake.wait(on: -1, timeoutMilliseconds: Int32(clamping: delay.wholeMillisecondsRoundedUp))
            }
        }
        finished()
    }

    /// Subscribes on a fresh connection and delivers messages until the connection fails or the loop is stopped.
    /// Returns why it ended.
    private func session(
        on connection: HiredisConnection, endpoint: RedisConfiguration.Endpoint?, wake: WakeSignal,
        machine: inout SubscriberStateMachine
    ) -> RedisError {
        let ping = RedisCommand("PING").encoded
        // In holders mode the pool's connections are pointed here once the subscription is confirmed.
        var holdersTarget: (redirects: TrackingRedirects, endpoint: RedisConfiguration.Endpoint, id: Int)?
        do throws(RedisError) {
            switch tracking {
            case .broadcast(let prefixes):
                let id = try clientID(on: connection, wake: wake)
                var command: [any RedisArgumentConvertible] = ["CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST"]
                for prefix in prefixes {
                    command.append("PREFIX")
                    command.append(prefix)
                }
                // It answers before the `SUBSCRIBE` that follows, so the subscription's confirmation confirms it.
                connection.append(RedisCommand(arguments: command).encoded)
            case .holders(let redirects):
                guard let endpoint else {
                    return RedisError(.connectionFailed, "a tracker needs a node address", context: "CLIENT ID")
                }
                let id = try clientID(on: connection, wake: wake)
                holdersTarget = (redirects, endpoint, id)
                // The tracker itself reads nothing with `CLIENT CACHING YES`, so this tracks nothing. It makes a
                // server that refuses tracking (an ACL, a Redis older than 6) say so here, once, as in broadcast
                // mode, instead of in every pool connection's re-point.
                connection.append(RedisCommand("CLIENT", "TRACKING", "ON", "REDIRECT", String(id), "OPTIN").encoded)
            case nil:
                break
            }
        } catch {
            return error
        }
        for channel in channels { connection.append(RedisCommand("SUBSCRIBE", channel).encoded) }
        for pattern in patterns { connection.append(RedisCommand("PSUBSCRIBE", pattern).encoded) }
        do throws(RedisError) {
            try connection.flush()
            let confirmations = channels.count + patterns.count
            if let again = machine.sessionStarted(confirmations: confirmations, now: monotonicNanoseconds()) {
                emit(.subscribed(again: again))
            }
            while true {
                while let reply = try connection.bufferedReply() {
                    switch classify(reply) {
                    case .confirmation:
                        if let again = machine.confirmed() {
                            // Before anyone hears that tracking is on: every read tracked from then on reports here.
                            if let target = holdersTarget { target.redirects.point(target.endpoint, at: target.id) }
                            emit(.subscribed(again: again))
                        }
                    case .message(let message):
                        emit(.message(message))
                    case .invalidated(let keys):
                        emit(.invalidated(keys))
                    case .pong:
                        machine.pongReceived()
                        emit(.heartbeat)
                    case .error(let message):
                        let command = tracking == nil ? "SUBSCRIBE" : "CLIENT TRACKING / SUBSCRIBE"
                        return RedisError(.serverError, message, context: command)
                    case .other:
                        break
                    }
                }
                if connection.hasBufferedBytes {
                    try connection.fillReader()
                    continue
                }
                guard case .wait(let waitNanoseconds, let sendPing) = machine.tick(now: monotonicNanoseconds()) else {
                    return RedisError(.timeout, "the server did not answer PING within \(subscriber.pingTimeout)")
                }
                if sendPing {
                    connection.append(ping)
                    try connection.flush()
                }
                let ready = wake.wait(
                    on: connection.fileDescriptor, timeoutMilliseconds: Int32(max(1, waitNanoseconds / 1_000_000)))
                if ready.failed { return RedisError(.connectionClosed, "poll failed: errno \(errno)") }
                if ready.woken {
                    if isStopped { return RedisError(.closed, "the subscription ended") }
                    return RedisError(.notMaster, "the master changed")
                }
                if ready.socket { try connection.fillReader() }
            }
        } catch {
            return error
        }
    }

    /// This connection's client ID: the redirect target of the tracking it receives (RESP2 has no push replies, so
    /// reports arrive as messages on ``invalidationChannel``).
    private func clientID(on connection: HiredisConnection, wake: WakeSignal) throws(RedisError) -> Int {
        connection.append(RedisCommand("CLIENT", "ID").encoded)
        try connection.flush()
        let deadline = monotonicNanoseconds() + subscriber.pingTimeout.nanoseconds
        var reply: RedisValue?
        while true {
            reply = try connection.bufferedReply()
            if reply != nil { break }
            if connection.hasBufferedBytes {
                try connection.fillReader()
                continue
            }
            let now = monotonicNanoseconds()
            if now >= deadline {
                throw RedisError(.timeout, "the server did not answer CLIENT ID within \(subscriber.pingTimeout)")
            }
            let ready = wake.wait(
                on: connection.fileDescriptor, timeoutMilliseconds: Int32(max(1, (deadline - now) / 1_000_000)))
            if ready.failed { throw RedisError(.connectionClosed, "poll failed: errno \(errno)") }
            if ready.woken {
                if isStopped { throw RedisError(.closed, "the subscription ended") }
                throw RedisError(.notMaster, "the master changed")
            }
            if ready.socket { try connection.fillReader() }
        }
        guard case .integer(let id) = reply, let clientID = Int(exactly: id) else {
            let detail = if case .error(let message) = reply { message } else { "an unexpected reply" }
            throw RedisError(.serverError, detail, context: "CLIENT ID")
        }
        return clientID
    }

    private enum Reply {
        case confirmation
        case message(RedisPubSubMessage)
        case invalidated([[UInt8]]?)
        case pong
        case error(String)
        case other
    }

    private func classify(_ reply: RedisValue) -> Reply {
        switch reply {
        case .error(let message):
            return .error(message)
        case .simpleString(let status) where status == "PONG":
            return .pong
        case .array(let parts):
            guard let kind = parts.first?.string?.lowercased() else { return .other }
            switch (kind, parts.count) {
            case ("subscribe", 3), ("psubscribe", 3):
                return .confirmation
            case ("message", 3) where tracking != nil && parts[1].string == Self.invalidationChannel:
                switch parts[2] {
                case .array(let keys): return .invalidated(keys.compactMap(\.bytes))
                case .null: return .invalidated(nil)
                default: return .other
                }
            case ("message", 3):
                return .message(
                    RedisPubSubMessage(channel: parts[1].string ?? "", payload: parts[2].bytes ?? []))
            case ("pmessage", 4):
                return .message(
                    RedisPubSubMessage(
                        channel: parts[2].string ?? "", pattern: parts[1].string, payload: parts[3].bytes ?? []))
            case ("pong", _):
                return .pong
            default:
                return .other
            }
        default:
            return .other
        }
    }
}
