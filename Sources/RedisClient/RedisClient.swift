import Synchronization

/// A pool of Redis connections with automatic pipelining.
///
/// Each connection is owned by an OS thread of the library's; async callers hand their command over and suspend,
/// so no blocking hiredis call ever runs on the Swift cooperative pool. Commands that arrive while a connection is
/// busy are written together in its next batch and their replies matched in order.
///
/// ```swift
/// let client = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:6379"))
/// try await client.send("SET", "greeting", "hello")
/// let value = try await client.send("GET", "greeting").string   // "hello"
/// await client.close()
/// ```
///
/// Connections open lazily on first use (or at once with ``run()``). A connection that breaks fails its in-flight
/// commands with a ``RedisError`` and is re-established with exponential backoff and jitter; while none is
/// available, commands fail fast with ``RedisError/Code/connectionFailed`` rather than queue behind a dead socket.
/// Commands are never retried automatically: a command that may or may not have run is reported, not repeated.
///
/// - Important: Call ``close()`` (or run ``run()`` in a service group and cancel it) when done, so that the
///   connection threads exit.
public final class RedisClient: Sendable {
    /// The configuration the pool was created with.
    public let configuration: RedisConfiguration
    /// What carries the requests, as the topology chose: a pool over one node, or a cluster router.
    private let executor: any RequestExecutor
    private let runStarted = Atomic<Bool>(false)
    private let counters = ClientCounters()
    /// The session cache's tracker IDs in holders mode, which every connection of this client redirects to.
    package let trackingRedirects = TrackingRedirects()
    /// Names this pool's threads (`redis<N>.<i>`), so they can be told apart in a debugger or `/proc`.
    let threadNamePrefix: String
    private static let instances = Atomic<Int>(0)

    /// Creates a pool. No connection is opened and no thread started until the first command or ``run()``.
    ///
    /// - Parameter configuration: Where the server is and how to behave towards it.
    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        let prefix = "redis\(Self.instances.wrappingAdd(1, ordering: .relaxed).oldValue % 100_000)."
        self.threadNamePrefix = prefix
        self.executor = configuration.topology.makeExecutor(
            configuration: configuration, counters: counters, namePrefix: prefix, redirects: trackingRedirects)
    }

    deinit { executor.shutdown() }

    /// On a Redis Cluster: the slot table and one pool per primary.
    var router: ClusterRouter? { executor as? ClusterRouter }

    /// Cluster redirections this client has followed (`0` on other topologies). A request is resent command by
    /// command after `MOVED`, and `ASK` puts `ASKING` before each command, so a `CLIENT CACHING YES` no longer
    /// precedes the read it was meant for: the session cache keeps no read during which this moved.
    package var redirectionCount: UInt64 { router?.redirections.load(ordering: .acquiring) ?? 0 }

    /// On a Redis Cluster nobody runs: reads the slot table if a read is due.
    func refreshTopologyIfDue() async { await router?.refreshIfDue() }

    /// Connects every pooled connection now and keeps the pool (and, on a cluster, the slot table) current until the
    /// calling task is cancelled, then closes it.
    ///
    /// This is the ServiceLifecycle shape: an application adds the client to its service group, and graceful
    /// shutdown cancels this task. Commands may be sent before or while `run()` runs.
    ///
    /// - Important: Call it at most once per client.
    public func run() async {
        precondition(!runStarted.exchange(true, ordering: .relaxed), "RedisClient.run() was called twice")
        await executor.run()
        await close()
    }

    /// Closes every connection: queued and in-flight commands fail with ``RedisError/Code/closed``, and this
    /// returns once every connection thread has exited. Commands sent afterwards fail at once. Idempotent.
    public func close() async {
        await executor.close()
    }

    /// Counters since the client was created, for benchmarks and dashboards.
    public struct Statistics: Sendable, Hashable {
        /// Requests callers awaited or detached: one per ``send(_:)-(RedisCommand)``, ``pipeline(_:)``,
        /// ``transaction(_:)`` or ``sendDetached(_:)``. Each is one round trip for its caller.
        public var requests: Int
        /// Commands those requests carried.
        public var commands: Int
        /// Batches the connections wrote: fewer batches than requests is automatic pipelining at work.
        public var batches: Int
        /// Batches whose reply a connection thread polled for rather than slept on
        /// (see ``RedisConfiguration/busyPollWindow``).
        public var polledBatches: Int
        /// Polled batches whose reply arrived within the window, each saving a thread wake-up.
        public var pollHits: Int
    }

    /// Counters since the client was created.
    public var statistics: Statistics {
        Statistics(
            requests: counters.requests.load(ordering: .relaxed), commands: counters.commands.load(ordering: .relaxed),
            batches: counters.batches.load(ordering: .relaxed),
            polledBatches: counters.polledBatches.load(ordering: .relaxed),
            pollHits: counters.pollHits.load(ordering: .relaxed))
    }

    /// How many pooled connections are connected right now (for health checks).
    public var connectedCount: Int { executor.connectedCount }

    /// Sends one command and returns its reply.
    ///
    /// - Parameter command: The command name and its arguments, each sent binary-safe.
    /// - Returns: The reply. An error reply is thrown, never returned.
    /// - Throws: ``RedisError``: ``RedisError/Code/serverError`` for an error reply, or a connection, timeout,
    ///   cancellation or closed error.
    @discardableResult
    public func send(_ command: any RedisArgumentConvertible...) async throws(RedisError) -> RedisValue {
        try await send(RedisCommand(arguments: command))
    }

    /// Sends one prepared command and returns its reply.
    ///
    /// - Parameter command: The command.
    /// - Returns: The reply. An error reply is thrown, never returned.
    @discardableResult
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisValue {
        guard !command.name.isEmpty else { throw RedisError(.invalidCommand, "a command needs at least a name") }
        let reply = try await execute(payload: command.encoded, replyCount: 1, name: command.name)
        return try reply.throwingServerError(context: command.name)
    }

    /// Queues a command whose reply nobody waits for: it is written with the connection's next batch, and its reply
    /// (or error) is read and dropped. Returns at once.
    ///
    /// For best-effort writes whose loss is harmless and retried naturally, such as refreshing a TTL; never for
    /// anything whose failure the caller must know about. Dropped silently when no connection is available.
    ///
    /// - Parameter command: The command.
    public func sendDetached(_ command: RedisCommand) {
        guard !command.name.isEmpty else { return }
        executor.submitDetached(command)
    }

    /// Sends several commands in one write on one connection and returns their replies in order.
    ///
    /// Other callers' commands are not interleaved between them. An error reply of one command appears as
    /// ``RedisValue/error(_:)`` at its position and does not stop the others. A pipeline is not atomic: use
    /// ``transaction(_:)`` or a script for that.
    ///
    /// - Parameter commands: The commands, in order.
    /// - Returns: One reply per command.
    public func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        if let empty = commands.first(where: { $0.name.isEmpty }) {
            throw RedisError(.invalidCommand, "a command needs at least a name", context: empty.name)
        }
        var payload: [UInt8] = []
        payload.reserveCapacity(commands.reduce(0) { $0 + $1.encoded.count })
        for command in commands { payload.append(contentsOf: command.encoded) }
        let reply = try await execute(payload: payload, replyCount: commands.count, name: "PIPELINE")
        // One reply comes back as itself, several as an array of them.
        if commands.count == 1 { return [reply] }
        return reply.array ?? []
    }

    /// Runs commands atomically with `MULTI` / `EXEC` in one round trip.
    ///
    /// - Parameter commands: The commands to run inside the transaction.
    /// - Returns: The reply of each command, in order (a command that failed at run time is
    ///   ``RedisValue/error(_:)``; Redis does not roll back).
    /// - Throws: ``RedisError/Code/serverError`` when the transaction was refused before running (a syntax error
    ///   in one command: `EXECABORT`), with the first command's error message.
    public func transaction(_ commands: [RedisCommand]) async throws(RedisError) -> [RedisValue] {
        let replies = try await pipeline([RedisCommand("MULTI")] + commands + [RedisCommand("EXEC")])
        guard let exec = replies.last else { throw RedisError(.protocolError, "no reply to EXEC") }
        switch exec {
        case .array(let results):
            return results
        case .error(let message):
            let cause = replies.dropLast().first { if case .error = $0 { true } else { false } }
            let detail = cause.flatMap { if case .error(let text) = $0 { text } else { nil } }
            throw RedisError(.serverError, detail.map { "\(message): \($0)" } ?? message, context: "EXEC")
        case .null:
            throw RedisError(.serverError, "the transaction was aborted", context: "EXEC")
        default:
            throw RedisError(.unexpectedReply, "EXEC answered \(exec)", context: "EXEC")
        }
    }

    // MARK: Internals

    func execute(payload: [UInt8], replyCount: Int, name: String) async throws(RedisError) -> RedisValue {
        try await executor.execute(ConnectionRequest(payload: payload, replyCount: replyCount, name: name))
    }
}

/// Suspends until the current task is cancelled.
package func waitForCancellation() async {
    while !Task.isCancelled {
        try? await Task.sleep(for: .seconds(3600))
    }
}

/// Counters shared by a client and its workers.
final class ClientCounters: Sendable {
    let requests = Atomic<Int>(0)
    let commands = Atomic<Int>(0)
    let batches = Atomic<Int>(0)
    let polledBatches = Atomic<Int>(0)
    let pollHits = Atomic<Int>(0)
}
