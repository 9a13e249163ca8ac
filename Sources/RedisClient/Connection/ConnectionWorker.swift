import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One pooled connection and the OS thread that owns it.
///
/// Callers append requests to a queue and suspend. The thread takes everything queued (up to the pipeline depth),
/// writes it in one go, then reads the replies in order and resumes each caller: requests that arrive while a batch is
/// in flight form the next batch. This is automatic pipelining, and it is why a handful of connections carries
/// hundreds of concurrent tasks.
///
/// A broken connection fails the requests in flight on it, then reconnects at once; failed connects back off
/// exponentially with jitter, and while backing off the worker refuses new requests so that the pool routes
/// around it instead of queueing callers behind a dead socket.
final class ConnectionWorker: Sendable {
    typealias Status = ConnectionStateMachine<PendingRequest>.Status

    /// State shared between callers and the connection thread, guarded by `lock`.
    private final class Shared: @unchecked Sendable {
        var machine: ConnectionStateMachine<PendingRequest>
        var socket: Int32 = -1
        var exited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []

        init(machine: ConnectionStateMachine<PendingRequest>) { self.machine = machine }
    }

    private let lock = ConditionLock()
    private let shared: Shared
    private let publishedStatus = Atomic<Int>(Status.notStarted.rawValue)
    /// Bumped on every submit, so the thread can notice new work without taking the lock while it spins.
    private let submissions = Atomic<Int>(0)
    /// Requests queued or in flight, read by the pool's dispatcher without the lock.
    private let outstandingCount = Atomic<Int>(0)
    private let configuration: RedisConfiguration
    private let name: String

    private let counters: ClientCounters
    /// Where the master is, when it is found through Sentinel.
    private let monitor: SentinelMonitor?

    init(configuration: RedisConfiguration, name: String, counters: ClientCounters, monitor: SentinelMonitor? = nil) {
        self.configuration = configuration
        self.name = name
        self.counters = counters
        self.monitor = monitor
        self.shared = Shared(
            machine: ConnectionStateMachine(
                backoff: configuration.reconnectBackoff, pipelineDepth: configuration.maximumPipelineDepth,
                serverDescription: configuration.serverDescription))
    }

    /// The status as last published, read without the lock by the pool's dispatcher.
    var status: Status { Status(rawValue: publishedStatus.load(ordering: .relaxed)) ?? .shutDown }

    /// Requests queued or in flight on this connection.
    var outstanding: Int { outstandingCount.load(ordering: .relaxed) }

    /// The error of the last failed connect, if the worker is backing off.
    var lastError: RedisError? { lock.withLock { shared.machine.lastError } }

    // MARK: Callers

    /// Queues a request, or fails it at once when the worker cannot take it.
    func submit(_ request: PendingRequest, continuation: UnsafeContinuation<Result<RedisValue, RedisError>, Never>) {
        lock.lock()
        if request.cancelledEarly {
            lock.unlock()
            continuation.resume(returning: .failure(RedisError.cancelled(request.name)))
            return
        }
        request.continuation = continuation
        if let refusal = apply(shared.machine.submit(request)) {
            // Cleared under the lock, so a cancellation racing this cannot resume the caller a second time.
            request.continuation = nil
            lock.unlock()
            continuation.resume(returning: .failure(refusal.adding(context: request.name)))
            return
        }
        lock.unlock()
    }

    /// Queues a request and suspends until its replies arrive; cancelling the task resumes it at once.
    func perform(_ request: PendingRequest) async throws(RedisError) -> RedisValue {
        try await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                submit(request, continuation: continuation)
            }
        } onCancel: {
            cancel(request)
        }.get()
    }

    /// Queues a request nobody waits for; dropped when the worker cannot take requests right now.
    func submitDetached(_ request: PendingRequest) {
        lock.withLock {
            guard shared.machine.acceptsRequests else { return }
            _ = apply(shared.machine.submit(request))
        }
    }

    /// Carries out what the machine decided about a submitted request (under the lock); returns the error to answer
    /// the caller with, if it was refused.
    private func apply(_ action: ConnectionStateMachine<PendingRequest>.SubmitAction) -> RedisError? {
        switch action {
        case .fail(let error):
            return error
        case .queued(let wakeThread):
            outstandingCount.add(1, ordering: .relaxed)
            submissions.add(1, ordering: .releasing)
            if wakeThread { lock.signal() }
        case .queuedStartingThread:
            outstandingCount.add(1, ordering: .relaxed)
            submissions.add(1, ordering: .releasing)
            publishStatusLocked()
            startThreadLocked()
        }
        return nil
    }

    /// Resumes a waiting caller with a cancellation error. A request already written still gets its reply read
    /// (and dropped), so the connection stays in step.
    func cancel(_ request: PendingRequest) {
        lock.lock()
        let continuation = request.continuation
        request.continuation = nil
        if continuation == nil { request.cancelledEarly = true }
        lock.unlock()
        continuation?.resume(returning: .failure(RedisError.cancelled(request.name)))
    }

    /// Starts connecting ahead of the first command.
    func start() {
        lock.withLock {
            if shared.machine.start() {
                publishStatusLocked()
                startThreadLocked()
            }
        }
    }

    /// Stops the worker: queued requests fail with ``RedisError/Code/closed``, a blocked read is woken.
    func shutdown() {
        lock.lock()
        guard let action = shared.machine.shutdown() else {
            lock.unlock()
            return
        }
        publishStatusLocked()
        wakeSocketLocked()
        if action.exitedWithoutThread { shared.exited = true }
        lock.signal()
        lock.unlock()
        fail(action.failed, RedisError(.closed, "the client was closed"))
    }

    /// The sentinels announced a new master: shut the socket, so in-flight commands fail now and a blocked read
    /// wakes. The next batch then sees the new generation and goes to the new master.
    func masterChanged() {
        lock.withLock {
            wakeSocketLocked()
            shared.machine.masterChanged()
            lock.signal()
        }
    }

    /// Returns once the connection thread has exited and freed its connection.
    func waitUntilExited() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if shared.exited {
                lock.unlock()
                continuation.resume()
            } else {
                shared.exitWaiters.append(continuation)
                lock.unlock()
            }
        }
    }

    // MARK: Connection thread

    private func startThreadLocked() {
        guard !spawnThread(name: name, { [self] in runConnectionThread() }) else { return }
        let failed = shared.machine.threadDidNotStart()
        publishStatusLocked()
        let error = shared.machine.unavailableError
        for request in failed { completeLocked(request, with: .failure(error.adding(context: request.name))) }
    }

    private func runConnectionThread() {
        var connection: HiredisConnection?
        // Through Sentinel: the node connected to and the generation it was the master in.
        var node: RedisConfiguration.Endpoint?
        var connectedGeneration: UInt64 = 0
        var lastUse: UInt64 = 0
        var replyPolling = ReplyPolling(window: configuration.busyPollWindow)
        var batch: [PendingRequest] = []
        batch.reserveCapacity(configuration.maximumPipelineDepth)

        while true {
            guard let current = connection else {
                switch connect() {
                case .connected(let new, let master, let generation):
                    connection = new
                    node = master
                    connectedGeneration = generation
                    lastUse = monotonicNanoseconds()
                case .failed(let delay):
                    if !sleepUnlessShutDown(for: delay) { break }
                case .shutDown:
                    break
                }
                if isShutDown { break }
                continue
            }

            waitBrieflyForWork(nanoseconds: replyPolling.windowNanoseconds)
            var abandoned = 0
            lock.lock()
            var action = shared.machine.nextBatch(into: &batch, abandoned: &abandoned)
            while case .wait = action {
                lock.wait()
                action = shared.machine.nextBatch(into: &batch, abandoned: &abandoned)
            }
            lock.unlock()
            if abandoned > 0 { outstandingCount.subtract(abandoned, ordering: .relaxed) }
            guard case .write = action else { break }
            if batch.isEmpty { continue }

            // A new master since this connection was made: nothing more may be written to the old one. One atomic
            // load per batch, and the batch goes back untouched to be written on a connection to the new master.
            let demoted = monitor.map { $0.generation != connectedGeneration } ?? false
            let idle = ConnectionStateMachine<PendingRequest>.shouldCheckIdleSocket(
                lastUse: lastUse, now: monotonicNanoseconds())
            if demoted || (idle && current.isClosedByPeer()) {
                lock.withLock {
                    shared.machine.requeue(batch)
                    shared.socket = -1
                }
                connection = nil
                continue
            }

            if !write(batch, on: current, node: node, polling: &replyPolling) {
                connection = nil
            }
            lastUse = monotonicNanoseconds()
        }

        lock.lock()
        let failed = shared.machine.threadExiting()
        publishStatusLocked()
        shared.socket = -1
        shared.exited = true
        let waiters = shared.exitWaiters
        shared.exitWaiters = []
        lock.unlock()
        connection = nil
        fail(failed, RedisError(.closed, "the client was closed"))
        for waiter in waiters { waiter.resume() }
    }

    /// Writes a batch and completes each request with its replies; `false` when the connection can no longer be
    /// used (it broke, or the node turned out not to be the master).
    private func write(
        _ batch: [PendingRequest], on connection: HiredisConnection, node: RedisConfiguration.Endpoint?,
        polling replyPolling: inout ReplyPolling
    ) -> Bool {
        for request in batch { connection.append(request.payload) }
        counters.batches.add(1, ordering: .relaxed)
        var index = 0
        var refusedAsReplica = false
        do throws(RedisError) {
            if replyPolling.shouldPoll(batchOf: batch.count) {
                let deadline = monotonicNanoseconds() &+ replyPolling.windowNanoseconds
                let hit = try connection.flushAndPollReadable(untilMonotonicNanoseconds: deadline)
                replyPolling.record(hit: hit)
                counters.polledBatches.add(1, ordering: .relaxed)
                if hit { counters.pollHits.add(1, ordering: .relaxed) }
            }
            while index < batch.count {
                let request = batch[index]
                let value: RedisValue
                if request.replyCount == 1 {
                    value = try connection.readReply()
                } else {
                    var values: [RedisValue] = []
                    values.reserveCapacity(request.replyCount)
                    for _ in 0..<request.replyCount { values.append(try connection.readReply()) }
                    value = .array(values)
                }
                if monitor != nil, value.isReadOnlyRefusal {
                    // The node was demoted under this connection: a lost connection, then rediscovery.
                    refusedAsReplica = true
                    complete(
                        request,
                        with: .failure(
                            RedisError(
                                .notMaster, "the node answered READONLY: it is no longer the master",
                                context: "\(request.name) on \(node?.description ?? "?")")))
                } else {
                    complete(request, with: .success(value))
                }
                index += 1
            }
        } catch {
            let reported = isShutDown ? RedisError(.closed, "the client was closed") : error
            for request in batch[index...] {
                complete(request, with: .failure(reported.adding(context: request.name)))
            }
            dropConnection()
            return false
        }
        guard refusedAsReplica else { return true }
        dropConnection()
        if let node { monitor?.nodeIsNotMaster(node) }
        return false
    }

    private func dropConnection() {
        lock.withLock {
            shared.socket = -1
            shared.machine.connectionLost()
            publishStatusLocked()
        }
    }

    /// A caller that just got its reply usually sends its next command within microseconds. Watching for it a
    /// little before sleeping on the condition variable saves a futex sleep and wake-up per command for such a
    /// caller (the latency-bound, one-task case); under load the queue is never empty and this never spins.
    private func waitBrieflyForWork(nanoseconds: UInt64) {
        guard nanoseconds > 0 else { return }
        let seen = submissions.load(ordering: .acquiring)
        let hasWork = lock.withLock { !shared.machine.queue.isEmpty }
        if hasWork { return }
        let deadline = monotonicNanoseconds() &+ nanoseconds
        while monotonicNanoseconds() < deadline {
            if submissions.load(ordering: .acquiring) != seen { return }
            sched_yield()
        }
    }

    private enum ConnectOutcome {
        /// Connected; through Sentinel, to this master in this generation.
        case connected(HiredisConnection, RedisConfiguration.Endpoint?, UInt64)
        /// Failed; back off for this long.
        case failed(Duration)
        case shutDown
    }

    private func connect() -> ConnectOutcome {
        if isShutDown { return .shutDown }
        var master: (RedisConfiguration.Endpoint, UInt64)?
        do throws(RedisError) {
            master = try monitor?.master()
            let connection = try HiredisConnection(
                configuration: configuration, node: master?.0, requiresMaster: master != nil)
            lock.lock()
            defer { lock.unlock() }
            guard shared.machine.connected() else { return .shutDown }
            publishStatusLocked()
            shared.socket = connection.fileDescriptor
            return .connected(connection, master?.0, master?.1 ?? 0)
        } catch {
            if error.code == .notMaster, let node = master?.0 { monitor?.nodeIsNotMaster(node) }
            lock.lock()
            let (failed, delay) = shared.machine.connectFailed(error)
            publishStatusLocked()
            lock.unlock()
            fail(failed, error)
            return .failed(delay)
        }
    }

    /// Sleeps for the backoff delay; returns `false` if the worker was shut down meanwhile.
    private func sleepUnlessShutDown(for delay: Duration) -> Bool {
        let deadline = monotonicNanoseconds() + delay.nanoseconds
        lock.lock()
        defer { lock.unlock() }
        while shared.machine.keepsBackingOff(now: monotonicNanoseconds(), until: deadline) {
            lock.wait(untilMonotonicNanoseconds: deadline)
        }
        let goesOn = shared.machine.backoffEnded()
        publishStatusLocked()
        return goesOn
    }

    private var isShutDown: Bool { lock.withLock { shared.machine.isShutDown } }

    private func complete(_ request: PendingRequest, with result: Result<RedisValue, RedisError>) {
        lock.lock()
        let continuation = request.continuation
        request.continuation = nil
        lock.unlock()
        outstandingCount.subtract(1, ordering: .relaxed)
        continuation?.resume(returning: result)
    }

    /// As ``complete(_:with:)``, for a caller that holds the lock.
    private func completeLocked(_ request: PendingRequest, with result: Result<RedisValue, RedisError>) {
        let continuation = request.continuation
        request.continuation = nil
        outstandingCount.subtract(1, ordering: .relaxed)
        continuation?.resume(returning: result)
    }

    private func fail(_ requests: [PendingRequest], _ error: RedisError) {
        for request in requests { complete(request, with: .failure(error.adding(context: request.name))) }
    }

    private func publishStatusLocked() {
        publishedStatus.store(shared.machine.status.rawValue, ordering: .relaxed)
    }

    private func wakeSocketLocked() {
        if shared.socket >= 0 { shutdownSocket(shared.socket) }
    }

}

extension PendingRequest: ConnectionRequest {
    var isAbandoned: Bool { continuation == nil && !detached }
}

extension ConnectionWorker {
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
        throw ConnectionStateMachine<PendingRequest>.unavailable(
            configuration.serverDescription, lastError: workers.lazy.compactMap(\.lastError).first)
    }
}

extension RedisError {
    static func cancelled(_ command: String) -> RedisError {
        RedisError(.cancelled, "the waiting task was cancelled", context: command)
    }
}
