internal import CHiredis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a Sentinel-monitored master is, kept current for every connection of this process that uses the same
/// sentinels: the pooled connections, the subscribers and the key-tracking connections.
///
/// - **Discovery** asks the sentinels in turn (`SENTINEL get-master-addr-by-name`), on the connecting thread.
/// - **A watcher thread** subscribes to `+switch-master` on every sentinel and acts on the first report. It also
///   polls `SENTINEL MASTER` every ``RedisConfiguration/Sentinel/pollInterval`` as a backstop.
/// - **A change** bumps the generation, which every connection compares before each write. Observers are then called
///   so that each connection shuts its socket at once: in-flight commands fail, subscribers and trackers report a gap,
///   and the next write goes to the new master.
///
/// The decisions live in ``SentinelState``; this class only does the I/O. One monitor exists per distinct
/// ``RedisConfiguration/Sentinel`` while anything uses it (``acquire(for:)`` / ``release()``).
final class SentinelMonitor: Sendable {
    typealias Endpoint = RedisConfiguration.Endpoint

    let sentinel: RedisConfiguration.Sentinel
    /// Credentials and timeouts for talking to the sentinels themselves.
    private let sentinelConfiguration: RedisConfiguration
    private let state: Mutex<SentinelState>
    private let publishedGeneration = Atomic<UInt64>(0)
    /// Serialises discovery, so a pool that lost its master asks the sentinels once, not once per connection.
    private let discoveryLock = Mutex<Void>(())
    private let observers = Mutex<(next: Int, handlers: [Int: @Sendable () -> Void])>((0, [:]))
    private let users = Mutex<Int>(0)
    private let watcherRunning = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    /// Wakes the watcher thread when the last user releases the monitor.
    private let wake = WakeSignal()
    /// When this process learned of each master change (wall clock, seconds), for tests and logs.
    let changes = Mutex<[(generation: UInt64, master: Endpoint?, unixTime: Double)]>([])

    /// One monitor per set of sentinels and way of reaching them: a TLS client and a plaintext one (a test, a
    /// migration) must not share connections.
    private struct Key: Hashable {
        let sentinel: RedisConfiguration.Sentinel
        let tls: RedisConfiguration.TLS?
    }

    private static let registry = Mutex<[Key: SentinelMonitor]>([:])
    private let key: Key

    private init(sentinel: RedisConfiguration.Sentinel, timeouts configuration: RedisConfiguration) {
        self.sentinel = sentinel
        self.key = Key(sentinel: sentinel, tls: configuration.tls)
        var sentinelConfiguration = RedisConfiguration(
            username: sentinel.username, password: sentinel.password,
            connectTimeout: configuration.connectTimeout,
            // A hung sentinel must not hold up the watcher (and with it every `+switch-master`) for long.
            commandTimeout: min(configuration.commandTimeout, .milliseconds(500)))
        sentinelConfiguration.clientName = nil
        // The sentinels speak TLS when the data nodes do, verified against the same one name.
        if var tls = configuration.tls {
            tls.serverName = configuration.tlsServerName
            sentinelConfiguration.tls = tls
        }
        self.sentinelConfiguration = sentinelConfiguration
        self.state = Mutex(SentinelState(masterName: sentinel.masterName, sentinels: sentinel.sentinels))
    }

    /// The monitor for these sentinels, shared by every user in the process; pair with ``release()``.
    static func acquire(for configuration: RedisConfiguration) -> SentinelMonitor? {
        configuration.sentinel.map { acquire($0, timeouts: configuration) }
    }

    /// The monitor for `sentinel`, shared by every user in the process, its connections timed as `configuration`
    /// says; pair with ``release()``.
    static func acquire(_ sentinel: RedisConfiguration.Sentinel, timeouts configuration: RedisConfiguration)
        -> SentinelMonitor
    {
        let monitor = registry.withLock { monitors in
            let key = Key(sentinel: sentinel, tls: configuration.tls)
            if let existing = monitors[key] { return existing }
            let created = SentinelMonitor(sentinel: sentinel, timeouts: configuration)
            monitors[key] = created
            return created
        }
        monitor.users.withLock { $0 += 1 }
        return monitor
    }

    /// One user is done; the last one stops the watcher.
    func release() {
        let remaining = users.withLock { users -> Int in
            users -= 1
            return users
        }
        guard remaining <= 0 else { return }
        Self.registry.withLock { monitors in
            if monitors[key] === self { monitors[key] = nil }
        }
        stopRequested.store(true, ordering: .relaxed)
        wake?.signal()
    }

    /// The current generation: a connection made in an older one must not be written to.
    var generation: UInt64 { publishedGeneration.load(ordering: .acquiring) }

    // MARK: Observers

    /// Calls `handler` (on the watcher's or a connection's thread) after every master change.
    func addObserver(_ handler: @escaping @Sendable () -> Void) -> Int {
        observers.withLock { observers in
            observers.next += 1
            observers.handlers[observers.next] = handler
            return observers.next
        }
    }

    func removeObserver(_ id: Int) {
        _ = observers.withLock { $0.handlers.removeValue(forKey: id) }
    }

    /// Publishes the new generation and tells the observers, so every connection to the old master is shut.
    /// `notifying: false` for a discovery that follows no master at all: nothing can be connected to a stale one.
    private func publishChange(notifying: Bool = true) {
        let (generation, master) = state.withLock { ($0.generation, $0.master) }
        publishedGeneration.store(generation, ordering: .releasing)
        var wallClock = timespec()
        clock_gettime(CLOCK_REALTIME, &wallClock)
        changes.withLock {
            $0.append((generation, master, Double(wallClock.tv_sec) + Double(wallClock.tv_nsec) / 1e9))
        }
        guard notifying else { return }
        let handlers = observers.withLock { Array($0.handlers.values) }
        for handler in handlers { handler() }
    }

    // MARK: Discovery

    /// The master to connect to and its generation, asking the sentinels if it is not known. Blocks the calling
    /// thread (a connection thread, never the cooperative pool).
    func master() throws(RedisError) -> (Endpoint, UInt64) {
        startWatcherIfNeeded()
        if let known = state.withLock({ state in state.master.map { ($0, state.generation) } }) { return known }
        return try discoveryLock.withLock { _ throws(RedisError) in try discover() }
    }

    /// Asks the sentinels in turn; under the discovery lock.
    private func discover() throws(RedisError) -> (Endpoint, UInt64) {
        if let known = state.withLock({ state in state.master.map { ($0, state.generation) } }) { return known }
        var failures: [String] = []
        for candidate in state.withLock({ $0.sentinels }) {
            do throws(RedisError) {
                let connection = try HiredisConnection(configuration: sentinelConfiguration, node: candidate)
                connection.append(RedisCommand("SENTINEL", "get-master-addr-by-name", sentinel.masterName).encoded)
                let reply = try connection.readReply()
                guard let parts = reply.array, parts.count == 2, let host = parts[0].string, let port = parts[1].int
                else {
                    let detail = if case .error(let message) = reply { message } else { "does not know the master" }
                    failures.append("\(candidate): \(detail)")
                    state.withLock { $0.sentinelFailed(candidate) }
                    continue
                }
                let changed = state.withLock { $0.discovered(.tcp(host: host, port: port), from: candidate) }
                if changed { publishChange(notifying: false) }
                if let known = state.withLock({ state in state.master.map { ($0, state.generation) } }) {
                    return known
                }
            } catch {
                failures.append("\(candidate): \(error.message)")
                state.withLock { $0.sentinelFailed(candidate) }
            }
        }
        throw RedisError(
            .connectionFailed,
            "no sentinel named the master '\(sentinel.masterName)' (\(failures.joined(separator: "; ")))",
            context: "SENTINEL get-master-addr-by-name")
    }

    /// A node said it is not the master (`ROLE`, `-READONLY`): forget it and rediscover.
    func nodeIsNotMaster(_ node: Endpoint) {
        let changed = state.withLock { $0.nodeIsNotMaster(node) }
        if changed { publishChange() }
    }

    // MARK: Watcher

    private func startWatcherIfNeeded() {
        guard !watcherRunning.exchange(true, ordering: .relaxed) else { return }
        if !spawnThread(name: "rsentinel", { [self] in watch() }) {
            watcherRunning.store(false, ordering: .relaxed)
        }
    }

    /// Subscribes to `+switch-master` on every sentinel and polls them, until the last user releases the monitor.
    ///
    /// The thread sleeps in `poll(2)` on the subscriptions and the wake-up pipe until an announcement, a release,
    /// the next backstop poll or the next retry of a sentinel it lost, whichever comes first: an idle monitor wakes
    /// once per ``RedisConfiguration/Sentinel/pollInterval``, not on a timer of its own.
    private func watch() {
        var subscriptions: [Endpoint: HiredisConnection] = [:]
        var retryAt: [Endpoint: UInt64] = [:]
        var nextPoll = monotonicNanoseconds() + sentinel.pollInterval.nanoseconds
        while !stopRequested.load(ordering: .relaxed) {
            let now = monotonicNanoseconds()
            for candidate in sentinel.sentinels
            where subscriptions[candidate] == nil && now >= retryAt[candidate, default: 0] {
                do throws(RedisError) {
                    let connection = try HiredisConnection(configuration: sentinelConfiguration, node: candidate)
                    connection.append(RedisCommand("SUBSCRIBE", "+switch-master").encoded)
                    try connection.flush()
                    subscriptions[candidate] = connection
                    retryAt[candidate] = nil
                } catch {
                    retryAt[candidate] = now + Self.sentinelRetryNanoseconds
                }
            }
            let watched = Array(subscriptions)
            let wakeAt = retryAt.values.reduce(nextPoll) { min($0, $1) }
            let timeout = Int32(clamping: (wakeAt &- min(wakeAt, monotonicNanoseconds()) + 999_999) / 1_000_000)
            var descriptors = watched.map { pollfd(fd: $0.value.fileDescriptor, events: Int16(POLLIN), revents: 0) }
            descriptors.append(pollfd(fd: wake?.readEnd ?? -1, events: Int16(POLLIN), revents: 0))
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
            if ready > 0 {
                if descriptors[watched.count].revents != 0 { wake?.drain() }
                for (index, (candidate, connection)) in watched.enumerated() where descriptors[index].revents != 0 {
                    do throws(RedisError) {
                        try connection.fillReader()
                        while let reply = try connection.bufferedReply() { handleAnnouncement(reply) }
                    } catch {
                        subscriptions[candidate] = nil
                        retryAt[candidate] = monotonicNanoseconds() + Self.sentinelRetryNanoseconds
                    }
                }
            }
            if monotonicNanoseconds() >= nextPoll {
                pollSentinels()
                nextPoll = monotonicNanoseconds() + sentinel.pollInterval.nanoseconds
            }
        }
        watcherRunning.store(false, ordering: .relaxed)
    }

    /// How long the watcher waits before subscribing again to a sentinel it could not reach.
    private static let sentinelRetryNanoseconds: UInt64 = 1_000_000_000

    /// One command to one sentinel on a short-lived connection; `nil` when it cannot answer.
    private func ask(_ candidate: Endpoint, _ command: RedisCommand) -> RedisValue? {
        do throws(RedisError) {
            let connection = try HiredisConnection(configuration: sentinelConfiguration, node: candidate)
            connection.append(command.encoded)
            return try connection.readReply()
        } catch {
            return nil
        }
    }

    /// `["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]`
    private func handleAnnouncement(_ reply: RedisValue) {
        guard let parts = reply.array, parts.count == 3, parts[0].string == "message",
            parts[1].string == "+switch-master", let payload = parts[2].string
        else { return }
        let fields = payload.split(separator: " ")
        guard fields.count == 5, let port = Int(fields[4]), (1...65535).contains(port) else { return }
        let changed = state.withLock {
            $0.switchAnnounced(masterName: String(fields[0]), to: .tcp(host: String(fields[3]), port: port))
        }
        if changed { publishChange() }
    }

    /// The backstop: `SENTINEL MASTER <name>` on every sentinel, each on a short-lived connection.
    private func pollSentinels() {
        var answers: [SentinelState.PollAnswer] = []
        for candidate in sentinel.sentinels {
            guard let fields = ask(candidate, RedisCommand("SENTINEL", "MASTER", sentinel.masterName))?.array else {
                continue
            }
            var values: [String: String] = [:]
            var index = 0
            while index + 1 < fields.count {
                if let key = fields[index].string, let value = fields[index + 1].string { values[key] = value }
                index += 2
            }
            guard let host = values["ip"], let port = values["port"].flatMap(Int.init),
                let epoch = values["config-epoch"].flatMap(Int.init)
            else { continue }
            answers.append(.init(sentinel: candidate, master: .tcp(host: host, port: port), epoch: epoch))
        }
        let changed = state.withLock { $0.polled(answers) }
        if changed { publishChange() }
    }
}
