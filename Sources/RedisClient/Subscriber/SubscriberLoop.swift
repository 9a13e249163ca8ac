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
    /// What the loop reports; the public sequences translate it.
    enum Output: Sendable {
        /// Every subscription is confirmed; `again` after a gap.
        case subscribed(again: Bool)
        case message(RedisPubSubMessage)
        /// Keys that changed, or `nil` when the whole database was flushed (tracking only).
        case invalidated([[UInt8]]?)
        case disconnected(RedisError)
    }

    /// The channel on which Redis redirects key-tracking invalidations (RESP2).
    static let invalidationChannel = "__redis__:invalidate"

    private struct WakePipe {
        var readEnd: Int32
        var writeEnd: Int32
        var open: Bool
        var stopped: Bool
    }

    private let subscriber: RedisSubscriber
    private let channels: [String]
    private let patterns: [String]
    /// Key prefixes to track (`CLIENT TRACKING ... BCAST`), or `nil` for a plain subscription.
    private let trackedPrefixes: [String]?
    private let continuation: AsyncStream<Output>.Continuation
    private let wake: Mutex<WakePipe>
    /// The thread's name, `rsub<N>`, unique per subscription so tests can see it go.
    let threadName: String
    private static let instances = Atomic<Int>(0)

    init(
        subscriber: RedisSubscriber, channels: [String], patterns: [String], trackedPrefixes: [String]? = nil,
        continuation: AsyncStream<Output>.Continuation
    ) {
        self.subscriber = subscriber
        self.channels = trackedPrefixes == nil ? channels : channels + [Self.invalidationChannel]
        self.patterns = patterns
        self.trackedPrefixes = trackedPrefixes
        self.continuation = continuation
        self.threadName = "rsub\(Self.instances.wrappingAdd(1, ordering: .relaxed).oldValue % 1_000_000)"
        var fds: [Int32] = [-1, -1]
        let opened = pipe(&fds) == 0
        self.wake = Mutex(WakePipe(readEnd: fds[0], writeEnd: fds[1], open: opened, stopped: false))
    }

    func start() {
        let hasPipe = wake.withLock { $0.open }
        guard hasPipe else {
            continuation.yield(.disconnected(RedisError(.connectionFailed, "cannot create the subscriber's pipe")))
            continuation.finish()
            return
        }
        let started = spawnThread(name: threadName) { [self] in run() }
        if !started {
            continuation.yield(.disconnected(RedisError(.connectionFailed, "cannot start the subscriber thread")))
            closePipe()
            continuation.finish()
        }
    }

    /// Ends the current connection or backoff at once without stopping: the master changed, so the next attempt
    /// goes to the new one now.
    func nudge() {
        wake.withLock { pipe in
            if pipe.open && !pipe.stopped {
                var byte: UInt8 = 2
                _ = write(pipe.writeEnd, &byte, 1)
            }
        }
    }

    /// Empties the wake-up pipe after a nudge, so the next `poll` waits again.
    private func drainWakePipe() {
        let readEnd = wakeDescriptor
        var buffer = [UInt8](repeating: 0, count: 64)
        while chiredis_wait_readable(-1, readEnd, 0) & 2 != 0 {
            if read(readEnd, &buffer, buffer.count) <= 0 { break }
        }
    }

    /// Asks the thread to stop; returns at once.
    func stop() {
        wake.withLock { pipe in
            pipe.stopped = true
            if pipe.open {
                var byte: UInt8 = 1
                _ = write(pipe.writeEnd, &byte, 1)
            }
        }
    }

    private var isStopped: Bool { wake.withLock { $0.stopped } }
    private var wakeDescriptor: Int32 { wake.withLock { $0.readEnd } }

    private func closePipe() {
        wake.withLock { pipe in
            if pipe.open {
                close(pipe.readEnd)
                close(pipe.writeEnd)
                pipe.open = false
            }
        }
    }

    private func run() {
        var machine = SubscriberStateMachine(
            pingInterval: subscriber.pingInterval, pingTimeout: subscriber.pingTimeout,
            backoff: subscriber.configuration.reconnectBackoff)
        let wakeFD = wakeDescriptor
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
                let (connection, _) = try connector.connect()
                error = session(on: connection, wakeFD: wakeFD, machine: &machine)
            } catch let connectError {
                error = connectError
            }
            if isStopped { break }
            let reconnect = machine.sessionEnded(error)
            if let report = reconnect.report { continuation.yield(.disconnected(report)) }
            if let delay = reconnect.delay,
                chiredis_wait_readable(-1, wakeFD, Int32(delay.wholeMillisecondsRoundedUp)) & 2 != 0
            {
                if isStopped { break }
                drainWakePipe()  // a nudge: retry now
            }
        }
        closePipe()
        continuation.finish()
    }

    /// Subscribes on a fresh connection and delivers messages until the connection fails or the loop is stopped.
    /// Returns why it ended.
    private func session(
        on connection: HiredisConnection, wakeFD: Int32, machine: inout SubscriberStateMachine
    ) -> RedisError {
        let ping = RedisCommand("PING").encoded
        do throws(RedisError) {
            if let trackedPrefixes { try enableTracking(of: trackedPrefixes, on: connection, wakeFD: wakeFD) }
        } catch {
            return error
        }
        for channel in channels { connection.append(RedisCommand("SUBSCRIBE", channel).encoded) }
        for pattern in patterns { connection.append(RedisCommand("PSUBSCRIBE", pattern).encoded) }
        do throws(RedisError) {
            try connection.flush()
            let confirmations = channels.count + patterns.count
            if let again = machine.sessionStarted(confirmations: confirmations, now: monotonicNanoseconds()) {
                continuation.yield(.subscribed(again: again))
            }
            while true {
                while let reply = try connection.bufferedReply() {
                    switch classify(reply) {
                    case .confirmation:
                        if let again = machine.confirmed() { continuation.yield(.subscribed(again: again)) }
                    case .message(let message):
                        continuation.yield(.message(message))
                    case .invalidated(let keys):
                        continuation.yield(.invalidated(keys))
                    case .pong:
                        machine.pongReceived()
                    case .error(let message):
                        let command = trackedPrefixes == nil ? "SUBSCRIBE" : "CLIENT TRACKING / SUBSCRIBE"
                        return RedisError(.serverError, message, context: command)
                    case .other:
                        break
                    }
                }
                guard case .wait(let waitNanoseconds, let sendPing) = machine.tick(now: monotonicNanoseconds()) else {
                    return RedisError(.timeout, "the server did not answer PING within \(subscriber.pingTimeout)")
                }
                if sendPing {
                    connection.append(ping)
                    try connection.flush()
                }
                let ready = chiredis_wait_readable(
                    connection.fileDescriptor, wakeFD, Int32(max(1, waitNanoseconds / 1_000_000)))
                if ready < 0 { return RedisError(.connectionClosed, "poll failed: errno \(errno)") }
                if ready & 2 != 0 {
                    if isStopped { return RedisError(.closed, "the subscription ended") }
                    drainWakePipe()
                    return RedisError(.notMaster, "the master changed")
                }
                if ready & 1 != 0 { try connection.fillReader() }
            }
        } catch {
            return error
        }
    }

    /// Turns on broadcast key tracking with this connection as its own redirect target, so invalidations arrive
    /// here as messages on ``invalidationChannel`` (RESP2 has no push replies). `CLIENT TRACKING` answers before the
    /// `SUBSCRIBE` that follows, so the subscription's confirmation also confirms tracking.
    private func enableTracking(
        of prefixes: [String], on connection: HiredisConnection, wakeFD: Int32
    ) throws(RedisError) {
        connection.append(RedisCommand("CLIENT", "ID").encoded)
        try connection.flush()
        let deadline = monotonicNanoseconds() + subscriber.pingTimeout.nanoseconds
        var reply: RedisValue?
        while true {
            reply = try connection.bufferedReply()
            if reply != nil { break }
            let now = monotonicNanoseconds()
            if now >= deadline {
                throw RedisError(.timeout, "the server did not answer CLIENT ID within \(subscriber.pingTimeout)")
            }
            let ready = chiredis_wait_readable(
                connection.fileDescriptor, wakeFD, Int32(max(1, (deadline - now) / 1_000_000)))
            if ready < 0 { throw RedisError(.connectionClosed, "poll failed: errno \(errno)") }
            if ready & 2 != 0 {
                if isStopped { throw RedisError(.closed, "the subscription ended") }
                drainWakePipe()
                throw RedisError(.notMaster, "the master changed")
            }
            if ready & 1 != 0 { try connection.fillReader() }
        }
        guard case .integer(let id) = reply else {
            let detail = if case .error(let message) = reply { message } else { "an unexpected reply" }
            throw RedisError(.serverError, detail, context: "CLIENT ID")
        }
        var tracking: [any RedisArgumentConvertible] = ["CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST"]
        for prefix in prefixes {
            tracking.append("PREFIX")
            tracking.append(prefix)
        }
        connection.append(RedisCommand(arguments: tracking).encoded)
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
            case ("message", 3) where trackedPrefixes != nil && parts[1].string == Self.invalidationChannel:
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
