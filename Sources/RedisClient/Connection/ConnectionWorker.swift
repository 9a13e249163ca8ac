import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One pooled connection and the OS thread that owns it: a small executor around a ``ConnectionStateMachine``.
///
/// Callers hand a request over and suspend on a checked continuation, which the machine keeps until the request's
/// replies arrive. The thread takes everything queued (up to the pipeline depth), writes it in one go, then reads the
/// replies in order and resumes each caller: requests that arrive while a batch is in flight form the next batch.
/// This is automatic pipelining, and it is why a handful of connections carries hundreds of concurrent tasks.
///
/// The thread only ever waits in `poll(2)`, on its socket and on a ``WakeSignal``: for work, for a reply, or for a
/// backoff to end. So a shutdown, a master change or new work wakes it the same way whatever it is doing, and an
/// idle socket that the server closes is noticed at once. Every touch of the shared state is one `withLock` scope
/// around one call into the machine; the machine's answer is carried out after the lock is released.
///
/// A broken connection fails the requests in flight on it, then reconnects at once; failed connects back off
/// exponentially with jitter, and while backing off the worker refuses new requests so that the pool routes
/// around it instead of queueing callers behind a dead socket.
final class ConnectionWorker: Sendable {
    typealias Waiter = CheckedContinuation<Result<RedisValue, RedisError>, Never>
    typealias Machine = ConnectionStateMachine<Waiter>
    typealias Status = Machine.Status

    private struct State {
        var machine: Machine
        var exited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>
    /// `nil` only when the system had no descriptor left for it; the worker then refuses every request.
    private let wake: WakeSignal?
    private let publishedStatus = Atomic<Int>(Status.notStarted.rawValue)
    /// Requests queued or in flight, read by the pool's dispatcher without the lock.
    private let outstandingCount = Atomic<Int>(0)
    /// Bumped on every submit, so the thread can notice new work without taking the lock while it spins.
    private let submissions = Atomic<Int>(0)
    private let requestIDs = Atomic<UInt64>(0)
    private let configuration: RedisConfiguration
    private let connector: NodeConnector
    private let name: String
    private let counters: ClientCounters
    /// Where tracked reads report, in the session cache's holders mode; `nil` for a client without one.
    private let redirects: TrackingRedirects?

    /// - Parameters:
    ///   - configuration: Credentials, timeouts and pipelining for the connection.
    ///   - resolver: Where the connection goes: a fixed node, or the master the sentinels name.
    ///   - name: The thread's name.
    ///   - counters: The pool's counters, which the thread adds its batches to.
    ///   - redirects: The client's tracking targets: the connection re-points its key tracking whenever they change.
    init(
        configuration: RedisConfiguration, resolver: any NodeResolver, name: String, counters: ClientCounters,
        redirects: TrackingRedirects? = nil
    ) {
        self.configuration = configuration
        self.connector = NodeConnector(configuration: configuration, resolver: resolver)
        self.name = name
        self.counters = counters
        self.redirects = redirects
        self.wake = WakeSignal()
        self.state = Mutex(
            State(
                machine: Machine(
                    backoff: configuration.reconnectBackoff, pipelineDepth: configuration.maximumPipelineDepth,
                    serverDescription: configuration.serverDescription)))
        redirects?.addWaker { [weak self] in self?.wake?.signal() }
    }

    /// The status as last published, read without the lock by the pool's dispatcher.
    var status: Status { Status(rawValue: publishedStatus.load(ordering: .relaxed)) ?? .shutDown }

    /// Requests queued or in flight on this connection.
    var outstanding: Int { outstandingCount.load(ordering: .relaxed) }

    /// The error of the last failed connect, if the worker is backing off.
    var lastError: RedisError? { state.withLock { $0.machine.lastError } }

    // MARK: Callers

    /// Queues a request and suspends until its replies arrive; cancelling the task resumes it at once.
    func perform(_ request: ConnectionRequest) async throws(RedisError) -> RedisValue {
        let id = Machine.RequestID(requestIDs.wrappingAdd(1, ordering: .relaxed).newValue)
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: Waiter) in
                submit(request, id: id, waiter: waiter)
            }
        } onCancel: {
            let waiter = state.withLock { $0.machine.cancel(id) }
            waiter?.resume(returning: .failure(RedisError.cancelled(request.name)))
        }
        return try result.get()
    }

    /// Queues a request nobody waits for; dropped when the worker cannot take requests right now.
    func submitDetached(_ request: ConnectionRequest) {
        let id = Machine.RequestID(requestIDs.wrappingAdd(1, ordering: .relaxed).newValue)
        submit(request, id: id, waiter: nil)
    }

    private func submit(_ request: ConnectionRequest, id: Machine.RequestID, waiter: Waiter?) {
        let action = state.withLock { state -> Machine.SubmitAction in
            // Checked under the lock: a cancellation handler that ran before this found nothing to cancel, and the
            // task's flag was set before it ran.
            if waiter != nil, Task.isCancelled { return .fail(RedisError.cancelled(request.name)) }
            guard wake != nil else { return .fail(RedisError(.connectionFailed, "no descriptor for a wake-up pipe")) }
            defer { publish(state.machine) }
            return state.machine.submit(request, id: id, waiter: waiter)
        }
        switch action {
        case .fail(let error):
            waiter?.resume(returning: .failure(error.code == .cancelled ? error : error.adding(context: request.name)))
        case .queued(let wakeThread):
            submissions.add(1, ordering: .releasing)
            if wakeThread { wake?.signal() }
        case .queuedStartingThread:
            submissions.add(1, ordering: .releasing)
            startThread()
        }
    }

    /// Starts connecting ahead of the first command.
    func start() {
        let starts = state.withLock { state in
            defer { publish(state.machine) }
            return state.machine.start()
        }
        if starts { startThread() }
    }

    /// Stops the worker: queued and in-flight requests fail with ``RedisError/Code/closed`` at once, and the thread
    /// is woken to leave.
    func shutdown() {
        let action = state.withLock { state -> Machine.ShutdownAction? in
            let action = state.machine.shutdown()
            if action?.exitedWithoutThread == true { state.exited = true }
            publish(state.machine)
            return action
        }
        guard let action else { return }
        wake?.signal()
        fail(action.failed, RedisError(.closed, "the client was closed"))
    }

    /// The node changed (the sentinels announced a new master): the thread wakes, sees that its connection is to a
    /// node that is no longer current, fails what is in flight and connects to the new one; a backoff ends now.
    func nodeChanged() {
        state.withLock { $0.machine.masterChanged() }
        wake?.signal()
    }

    /// Returns once the connection thread has exited and freed its connection.
    func waitUntilExited() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = state.withLock { state in
                if !state.exited { state.exitWaiters.append(continuation) }
                return state.exited
            }
            if exited { continuation.resume() }
        }
    }

    // MARK: The connection thread

    private func startThread() {
        guard !spawnThread(name: name, { [self] in runConnectionThread() }) else { return }
        let (failed, error) = state.withLock { state in
            defer { publish(state.machine) }
            return (state.machine.threadDidNotStart(), state.machine.unavailableError)
        }
        fail(failed, error)
    }

    private func runConnectionThread() {
        guard let wake else { return }
        var connection: HiredisConnection?
        var node = ResolvedNode(endpoint: nil, generation: 0)
        var replyPolling = ReplyPolling(window: configuration.busyPollWindow)
        var batch: [ConnectionRequest] = []
        batch.reserveCapacity(configuration.maximumPipelineDepth)
        var tracking = TrackingState()

        loop: while true {
            guard let current = connection else {
                switch connect() {
                case .connected(let new, let resolved):
                    connection = new
                    node = resolved
                    replyPolling = ReplyPolling(window: configuration.busyPollWindow)
                    tracking = TrackingState()
                case .failed(let delay):
                    if !sleepUnlessShutDown(for: delay, wake: wake) { break loop }
                case .shutDown:
                    break loop
                }
                continue
            }
            // A new master since this connection was made: nothing more may be written to the old one. One atomic
            // load per batch; what is queued goes to the new master.
            if !connector.resolver.isCurrent(node) {
                connection = nil
                tracking.lost(redirects)
                connectionLost(RedisError(.notMaster, "the master changed", context: current.endpointDescription))
                continue
            }
            waitBrieflyForWork(nanoseconds: replyPolling.windowNanoseconds)
            let action = state.withLock { state in
                defer { publish(state.machine) }
                return state.machine.nextBatch(into: &batch)
            }
            // Read after the batch was taken: a request submitted after a tracker re-pointed here finds the new
            // target, so its tracked read reports to the tracker the cache is listening on.
            let repoint = tracking.repoint(redirects, endpoint: node.endpoint ?? configuration.endpoint)
            switch action {
            case .exit:
                break loop
            case .wait:
                if let repoint {
                    // Idle, but the tracker moved: re-point now, so no connection is left redirecting to a client
                    // that is gone (`CLIENT LIST` flag `R`).
                    if !write([], repointingTo: repoint, tracking: &tracking, on: current, node: node,
                        polling: &replyPolling, wake: wake)
                    {
                        connection = nil
                    }
                    continue
                }
                // Asleep until woken (work, a node change, a new tracker, shutdown). A socket that turns readable
                // while nothing is in flight was closed by the server (a restart, `CLIENT KILL`, an idle timeout):
                // connect again now, so the next request does not find it dead.
                let ready = wake.wait(on: current.fileDescriptor, timeoutMilliseconds: -1)
                if ready.socket || ready.failed {
                    connection = nil
                    tracking.lost(redirects)
                    connectionLost(RedisError(.connectionClosed, "the server closed the idle connection"))
                }
            case .write:
                if !write(batch, repointingTo: repoint, tracking: &tracking, on: current, node: node,
                    polling: &replyPolling, wake: wake)
                {
                    connection = nil
                }
            }
        }
        tracking.lost(redirects)

        let (failed, waiters) = state.withLock { state in
            let failed = state.machine.threadExiting()
            publish(state.machine)
            state.exited = true
            defer { state.exitWaiters = [] }
            return (failed, state.exitWaiters)
        }
        connection = nil
        fail(failed, RedisError(.closed, "the client was closed"))
        for waiter in waiters { waiter.resume() }
    }

    /// Writes a batch and resumes each caller with its replies; `false` when the connection can no longer be used
    /// (it broke, or the node turned out not to be the master).
    private func write(
        _ batch: [ConnectionRequest], repointingTo repoint: Int?, tracking: inout TrackingState,
        on connection: HiredisConnection, node: ResolvedNode, polling replyPolling: inout ReplyPolling,
        wake: WakeSignal
    ) -> Bool {
        if let repoint { connection.append(TrackingState.command(redirectingTo: repoint)) }
        for request in batch { connection.append(request.payload) }
        counters.batches.add(1, ordering: .relaxed)
        var refusedAsReplica = false
        do throws(RedisError) {
            try connection.flush()
            if let repoint {
                // Ahead of the batch in the same write, so the batch's tracked reads report to the new target.
                // Refused (that tracker is already gone), the connection counts as pointing nowhere: the cache
                // restarts when its tracker comes back, and reads nothing it could serve meanwhile.
                let reply = try nextReply(on: connection, node: node, wake: wake)
                let confirmed = reply == .simpleString("OK")
                tracking.redirectedTo = confirmed ? repoint : nil
                if confirmed { tracking.everOn = true }
            }
            if replyPolling.shouldPoll(batchOf: batch.count) {
                let deadline = monotonicNanoseconds() &+ replyPolling.windowNanoseconds
                let hit = connection.pollReadable(untilMonotonicNanoseconds: deadline)
                replyPolling.record(hit: hit)
                counters.polledBatches.add(1, ordering: .relaxed)
                if hit {
                    counters.pollHits.add(1, ordering: .relaxed)
                    try connection.fillReader()
                }
            }
            for request in batch {
                var value: RedisValue
                if request.replyCount == 1 {
                    value = try nextReply(on: connection, node: node, wake: wake)
                } else {
                    var values: [RedisValue] = []
                    values.reserveCapacity(request.replyCount)
                    for _ in 0..<request.replyCount {
                        values.append(try nextReply(on: connection, node: node, wake: wake))
                    }
                    value = .array(values)
                }
                let result: Result<RedisValue, RedisError>
                if connector.resolver.requiresMaster, value.isReadOnlyRefusal {
                    // The node was demoted under this connection: a lost connection, then rediscovery.
                    refusedAsReplica = true
                    result = .failure(
                        RedisError(
                            .notMaster, "the node answered READONLY: it is no longer the master",
                            context: "\(request.name) on \(connection.endpointDescription)"))
                } else {
                    result = .success(value)
                }
                let waiter = state.withLock { state in
                    defer { publish(state.machine) }
                    return state.machine.replyArrived()
                }
                waiter?.resume(returning: result)
            }
        } catch {
            tracking.lost(redirects)
            connectionLost(error)
            return false
        }
        guard refusedAsReplica else { return true }
        tracking.lost(redirects)
        connectionLost(RedisError(.notMaster, "the node is no longer the master"))
        connector.resolver.refused(node)
        return false
    }

    /// The next reply: from what the reader holds, else after waiting for the socket. A wake-up while waiting means
    /// the worker was shut down or the node changed; anything else (a late signal) waits on.
    private func nextReply(on connection: HiredisConnection, node: ResolvedNode, wake: WakeSignal) throws(RedisError)
        -> RedisValue
    {
        var deadline = monotonicNanoseconds() &+ configuration.commandTimeout.nanoseconds
        while true {
            if let reply = try connection.bufferedReply() { return reply }
            if connection.hasBufferedBytes {
                try connection.fillReader()
                continue
            }
            let now = monotonicNanoseconds()
            guard now < deadline else {
                throw RedisError(
                    .timeout, "no reply within the command timeout", context: connection.endpointDescription)
            }
            let remaining = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            let ready = wake.wait(on: connection.fileDescriptor, timeoutMilliseconds: remaining)
            if ready.failed {
                throw RedisError(.connectionClosed, "poll failed", context: connection.endpointDescription)
            }
            if ready.woken {
                if state.withLock({ $0.machine.isShutDown }) { throw RedisError(.closed, "the client was closed") }
                if !connector.resolver.isCurrent(node) {
                    throw RedisError(.notMaster, "the master changed", context: connection.endpointDescription)
                }
            }
            if ready.socket {
                try connection.fillReader()
                deadline = monotonicNanoseconds() &+ configuration.commandTimeout.nanoseconds
            }
        }
    }

    /// The connection is gone: what was in flight on it fails (it may have run), the queue waits for the next one.
    private func connectionLost(_ error: RedisError) {
        let (failed, shutDown) = state.withLock { state in
            defer { publish(state.machine) }
            return (state.machine.connectionLost(), state.machine.isShutDown)
        }
        fail(failed, shutDown ? RedisError(.closed, "the client was closed") : error)
    }

    /// A caller that just got its reply usually sends its next command within microseconds. Watching for it a
    /// little before sleeping saves a sleep and a wake-up per command for such a caller (the latency-bound, one-task
    /// case); under load the queue is never empty and this never spins.
    private func waitBrieflyForWork(nanoseconds: UInt64) {
        guard nanoseconds > 0, outstandingCount.load(ordering: .relaxed) == 0 else { return }
        let seen = submissions.load(ordering: .acquiring)
        let deadline = monotonicNanoseconds() &+ nanoseconds
        while monotonicNanoseconds() < deadline {
            if submissions.load(ordering: .acquiring) != seen { return }
            sched_yield()
        }
    }

    private enum ConnectOutcome {
        case connected(HiredisConnection, ResolvedNode)
        /// Failed; back off for this long.
        case failed(Duration)
        case shutDown
    }

    private func connect() -> ConnectOutcome {
        if state.withLock({ $0.machine.isShutDown }) { return .shutDown }
        do throws(RedisError) {
            let (connection, node) = try connector.connect()
            let usable = state.withLock { state in
                defer { publish(state.machine) }
                return state.machine.connected()
            }
            return usable ? .connected(connection, node) : .shutDown
        } catch {
            let (failed, delay) = state.withLock { state in
                defer { publish(state.machine) }
                return state.machine.connectFailed(error)
            }
            fail(failed, error)
            return .failed(delay)
        }
    }

    /// Sleeps for the backoff delay, or until woken by a node change or shutdown; returns `false` if the worker was
    /// shut down meanwhile.
    private func sleepUnlessShutDown(for delay: Duration, wake: WakeSignal) -> Bool {
        let deadline = monotonicNanoseconds() &+ delay.nanoseconds
        while state.withLock({ $0.machine.keepsBackingOff(now: monotonicNanoseconds(), until: deadline) }) {
            let remaining = deadline &- monotonicNanoseconds()
            _ = wake.wait(on: -1, timeoutMilliseconds: Int32(clamping: (remaining + 999_999) / 1_000_000))
        }
        return state.withLock { state in
            defer { publish(state.machine) }
            return state.machine.backoffEnded()
        }
    }

    private func fail(_ owed: [Machine.Owed], _ error: RedisError) {
        for entry in owed { entry.waiter.resume(returning: .failure(error.adding(context: entry.name))) }
    }

    /// Publishes what the dispatcher reads without the lock. Called at the end of each lock scope that changes the
    /// machine.
    private func publish(_ machine: Machine) {
        publishedStatus.store(machine.status.rawValue, ordering: .relaxed)
        outstandingCount.store(machine.outstanding, ordering: .relaxed)
    }
}

extension ConnectionWorker {
    /// Where one connection's key tracking points (holders mode), and whether it ever had tracking on.
    struct TrackingState {
        /// The tracker client ID this connection's reports go to, as the last `CLIENT TRACKING` confirmed.
        var redirectedTo: Int?
        /// Whether Redis may hold tracked reads of this connection: then losing it loses reports.
        var everOn = false
        /// The ``TrackingRedirects/version`` last looked at.
        var seenVersion: UInt64 = 0

        /// The target to re-point to before the next write, if the tracker on this connection's node changed.
        mutating func repoint(_ redirects: TrackingRedirects?, endpoint: RedisConfiguration.Endpoint?) -> Int? {
            guard let redirects, let endpoint else { return nil }
            let version = redirects.version
            guard version != seenVersion else { return nil }
            seenVersion = version
            guard let target = redirects.target(for: endpoint), target != redirectedTo else { return nil }
            return target
        }

        /// The connection is gone: if Redis tracked reads through it, they are forgotten, and the cache is told.
        mutating func lost(_ redirects: TrackingRedirects?) {
            if everOn { redirects?.trackedConnectionLost() }
            self = TrackingState()
        }

        static func command(redirectingTo target: Int) -> [UInt8] {
            RedisCommand("CLIENT", "TRACKING", "ON", "REDIRECT", String(target), "OPTIN").encoded
        }
    }

    /// The connected worker with the fewest requests outstanding (the first on a tie), else one that is connecting;
    /// never one that is backing off after failures.
    ///
    /// Preferring the least loaded, and the same one while all are idle, keeps a lone caller on the connection
    /// whose thread is still watching for its next command, and spreads a crowd evenly for pipelining.
    static func pick(from workers: [ConnectionWorker], configuration: RedisConfiguration) throws(RedisError)
        -> ConnectionWorker
    {
        var best: ConnectionWorker?
        var bestLoad = Int.max
        var fallback: ConnectionWorker?
        for worker in workers {
            switch worker.status {
            case .connected:
                let load = worker.outstanding
                if load < bestLoad {
                    best = worker
                    bestLoad = load
                }
            case .connecting, .notStarted: if fallback == nil { fallback = worker }
            case .backingOff, .shutDown: continue
            }
        }
        if let best { return best }
        if let fallback { return fallback }
        if !workers.isEmpty && workers.allSatisfy({ $0.status == .shutDown }) {
            throw RedisError(.closed, "the client was closed")
        }
        throw ConnectionStateMachine<Waiter>.unavailable(
            configuration.serverDescription, lastError: workers.lazy.compactMap(\.lastError).first)
    }
}

extension RedisError {
    static func cancelled(_ command: String) -> RedisError {
        RedisError(.cancelled, "the waiting task was cancelled", context: command)
    }
}
