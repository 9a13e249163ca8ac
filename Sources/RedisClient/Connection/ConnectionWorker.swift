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
    enum Status: Int, Sendable {
        case notStarted, connecting, connected, backingOff, shutDown

        var acceptsRequests: Bool { self == .notStarted || self == .connecting || self == .connected }
    }

    /// State shared between callers and the connection thread, guarded by `lock`.
    private final class Shared: @unchecked Sendable {
        var queue: [PendingRequest] = []
        var status: Status = .notStarted
        var threadIsWaiting = false
        var socket: Int32 = -1
        var lastError: RedisError?
        var exited = false
        /// Set by a master change: a backoff sleep ends at once, since the next attempt goes to a new node.
        var retryNow = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let lock = ConditionLock()
    private let shared = Shared()
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
    }

    /// The status as last published, read without the lock by the pool's dispatcher.
    var status: Status { Status(rawValue: publishedStatus.load(ordering: .relaxed)) ?? .shutDown }

    /// Requests queued or in flight on this connection.
    var outstanding: Int { outstandingCount.load(ordering: .relaxed) }

    /// The error of the last failed connect, if the worker is backing off.
    var lastError: RedisError? { lock.withLock { shared.lastError } }

    // MARK: Callers

    /// Queues a request, or fails it at once when the worker cannot take it.
    func submit(_ request: PendingRequest, continuation: UnsafeContinuation<RedisValue, any Error>) {
        lock.lock()
        if request.cancelledEarly {
            lock.unlock()
            continuation.resume(throwing: RedisError.cancelled(request.name))
            return
        }
        switch shared.status {
        case .shutDown:
            lock.unlock()
            continuation.resume(throwing: RedisError(.closed, "the client was closed", context: request.name))
            return
        case .backingOff:
            let error = unavailableError()
            lock.unlock()
            continuation.resume(throwing: error.adding(context: request.name))
            return
        case .notStarted:
            if !startThreadLocked() {
                let error = unavailableError()
                lock.unlock()
                continuation.resume(throwing: error)
                return
            }
        case .connecting, .connected:
            break
        }
        request.continuation = continuation
        shared.queue.append(request)
        outstandingCount.add(1, ordering: .relaxed)
        submissions.add(1, ordering: .releasing)
        if shared.threadIsWaiting { lock.signal() }
        lock.unlock()
    }

    /// Queues a request and suspends until its replies arrive; cancelling the task resumes it at once.
    func perform(_ request: PendingRequest) async throws -> RedisValue {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                submit(request, continuation: continuation)
            }
        } onCancel: {
            cancel(request)
        }
    }

    /// Queues a request nobody waits for; dropped when the worker cannot take requests right now.
    func submitDetached(_ request: PendingRequest) {
        lock.lock()
        switch shared.status {
        case .connecting, .connected:
            shared.queue.append(request)
            outstandingCount.add(1, ordering: .relaxed)
            submissions.add(1, ordering: .releasing)
            if shared.threadIsWaiting { lock.signal() }
        case .notStarted:
            if startThreadLocked() {
                shared.queue.append(request)
                outstandingCount.add(1, ordering: .relaxed)
            }
        case .backingOff, .shutDown:
            break
        }
        lock.unlock()
    }

    /// Resumes a waiting caller with a cancellation error. A request already written still gets its reply read
    /// (and dropped), so the connection stays in step.
    func cancel(_ request: PendingRequest) {
        lock.lock()
        let continuation = request.continuation
        request.continuation = nil
        if continuation == nil { request.cancelledEarly = true }
        lock.unlock()
        continuation?.resume(throwing: RedisError.cancelled(request.name))
    }

    /// Starts connecting ahead of the first command.
    func start() {
        lock.withLock {
            if shared.status == .notStarted { _ = startThreadLocked() }
        }
    }

    /// Stops the worker: queued requests fail with ``RedisError/Code/closed``, a blocked read is woken.
    func shutdown() {
        lock.lock()
        guard shared.status != .shutDown else {
            lock.unlock()
            return
        }
        let started = shared.status != .notStarted
        setStatusLocked(.shutDown)
        let failed = shared.queue
        shared.queue = []
        wakeSocketLocked()
        if !started { shared.exited = true }
        lock.signal()
        lock.unlock()
        fail(failed, RedisError(.closed, "the client was closed"))
    }

    /// The sentinels announced a new master: shut the socket, so in-flight commands fail now and a blocked read
    /// wakes. The next batch then sees the new generation and goes to the new master.
    func masterChanged() {
        lock.withLock {
            wakeSocketLocked()
            shared.retryNow = true
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

    private func startThreadLocked() -> Bool {
        setStatusLocked(.connecting)
        let started = spawnThread(name: name) { [self] in runConnectionThread() }
        if !started {
            shared.lastError = RedisError(.connectionFailed, "the system refused to start a connection thread")
            setStatusLocked(.backingOff)
        }
        return started
    }

    private func runConnectionThread() {
        var connection: HiredisConnection?
        // Through Sentinel: the node connected to and the generation it was the master in.
        var node: RedisConfiguration.Endpoint?
        var connectedGeneration: UInt64 = 0
        var failedAttempts = 0
        var batch: [PendingRequest] = []
        var lastUse: UInt64 = 0
        let depth = configuration.maximumPipelineDepth
        var replyPolling = ReplyPolling(window: configuration.busyPollWindow)

        while true {
            guard let current = connection else {
                switch connect() {
                case .connected(let new, let master, let generation):
                    connection = new
                    node = master
                    connectedGeneration = generation
                    failedAttempts = 0
                    lastUse = monotonicNanoseconds()
                case .failed:
                    let delay = configuration.reconnectBackoff.delay(attempt: failedAttempts)
                    failedAttempts += 1
                    if !sleepUnlessShutDown(for: delay) { break }
                case .shutDown:
                    break
                }
                if isShutDown { break }
                continue
            }

            waitBrieflyForWork(nanoseconds: replyPolling.windowNanoseconds)
            lock.lock()
            while shared.queue.isEmpty && shared.status != .shutDown {
                shared.threadIsWaiting = true
                lock.wait()
                shared.threadIsWaiting = false
            }
            if shared.status == .shutDown {
                lock.unlock()
                break
            }
            takeBatchLocked(into: &batch, depth: depth)
            lock.unlock()
            if batch.isEmpty { continue }

            // An idle socket may have been closed by the server (restart, CLIENT KILL, timeout): check before
            // writing, and put the batch back untouched, so the first command after a restart does not fail.
            let now = monotonicNanoseconds()
            // A new master since this connection was made: nothing more may be written to the old one. One atomic
            // load per batch, and the batch goes back untouched to be written on a connection to the new master.
            let demoted = monitor.map { $0.generation != connectedGeneration } ?? false
            if demoted || (now &- lastUse > 1_000_000_000 && current.isClosedByPeer()) {
                lock.withLock {
                    shared.queue.insert(contentsOf: batch, at: 0)
                    shared.socket = -1
                }
                batch.removeAll(keepingCapacity: true)
                connection = nil
                continue
            }

            for request in batch { current.append(request.payload) }
            counters.batches.add(1, ordering: .relaxed)
            var index = 0
            var refusedAsReplica = false
            do throws(RedisError) {
                if replyPolling.shouldPoll(batchOf: batch.count) {
                    let deadline = monotonicNanoseconds() &+ replyPolling.windowNanoseconds
                    let hit = try current.flushAndPollReadable(untilMonotonicNanoseconds: deadline)
                    replyPolling.record(hit: hit)
                    counters.polledBatches.add(1, ordering: .relaxed)
                    if hit { counters.pollHits.add(1, ordering: .relaxed) }
                }
                while index < batch.count {
                    let request = batch[index]
                    let value: RedisValue
                    if request.replyCount == 1 {
                        value = try current.readReply()
                    } else {
                        var values: [RedisValue] = []
                        values.reserveCapacity(request.replyCount)
                        for _ in 0..<request.replyCount { values.append(try current.readReply()) }
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
                if refusedAsReplica, let node {
                    lock.withLock {
                        shared.socket = -1
                        if shared.status != .shutDown { setStatusLocked(.connecting) }
                    }
                    connection = nil
                    monitor?.nodeIsNotMaster(node)
                }
            } catch {
                let reported = isShutDown ? RedisError(.closed, "the client was closed") : error
                for request in batch[index...] {
                    complete(request, with: .failure(reported.adding(context: request.name)))
                }
                lock.withLock {
                    shared.socket = -1
                    if shared.status != .shutDown { setStatusLocked(.connecting) }
                }
                connection = nil
            }
            lastUse = monotonicNanoseconds()
            batch.removeAll(keepingCapacity: true)
        }

        lock.lock()
        setStatusLocked(.shutDown)
        let failed = shared.queue
        shared.queue = []
        shared.socket = -1
        shared.exited = true
        let waiters = shared.exitWaiters
        shared.exitWaiters = []
        lock.unlock()
        connection = nil
        fail(failed, RedisError(.closed, "the client was closed"))
        for waiter in waiters { waiter.resume() }
    }

    /// A caller that just got its reply usually sends its next command within microseconds. Watching for it a
    /// little before sleeping on the condition variable saves a futex sleep and wake-up per command for such a
    /// caller (the latency-bound, one-task case); under load the queue is never empty and this never spins.
    private func waitBrieflyForWork(nanoseconds: UInt64) {
        guard nanoseconds > 0 else { return }
        let seen = submissions.load(ordering: .acquiring)
        let hasWork = lock.withLock { !shared.queue.isEmpty }
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
        case failed
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
            if shared.status == .shutDown { return .shutDown }
            shared.socket = connection.fileDescriptor
            shared.lastError = nil
            setStatusLocked(.connected)
            return .connected(connection, master?.0, master?.1 ?? 0)
        } catch {
            if error.code == .notMaster, let node = master?.0 { monitor?.nodeIsNotMaster(node) }
            lock.lock()
            shared.lastError = error
            if shared.status != .shutDown { setStatusLocked(.backingOff) }
            let failed = shared.queue
            shared.queue = []
            lock.unlock()
            fail(failed, error)
            return .failed
        }
    }

    /// Sleeps for the backoff delay; returns `false` if the worker was shut down meanwhile.
    private func sleepUnlessShutDown(for delay: Duration) -> Bool {
        let deadline = monotonicNanoseconds() + delay.nanoseconds
        lock.lock()
        defer { lock.unlock() }
        while shared.status != .shutDown && !shared.retryNow && monotonicNanoseconds() < deadline {
            lock.wait(untilMonotonicNanoseconds: deadline)
        }
        shared.retryNow = false
        if shared.status == .shutDown { return false }
        setStatusLocked(.connecting)
        return true
    }

    private func takeBatchLocked(into batch: inout [PendingRequest], depth: Int) {
        var taken = 0
        for request in shared.queue {
            taken += 1
            // Cancelled before it was written: skip it, nothing is owed on the wire.
            if request.continuation != nil || request.detached {
                batch.append(request)
            } else {
                outstandingCount.subtract(1, ordering: .relaxed)
            }
            if batch.count == depth { break }
        }
        if taken == shared.queue.count {
            shared.queue.removeAll(keepingCapacity: true)
        } else {
            shared.queue.removeFirst(taken)
        }
    }

    private var isShutDown: Bool { lock.withLock { shared.status == .shutDown } }

    private func complete(_ request: PendingRequest, with result: Result<RedisValue, RedisError>) {
        outstandingCount.subtract(1, ordering: .relaxed)
        lock.lock()
        let continuation = request.continuation
        request.continuation = nil
        lock.unlock()
        guard let continuation else { return }
        switch result {
        case .success(let value): continuation.resume(returning: value)
        case .failure(let error): continuation.resume(throwing: error)
        }
    }

    private func fail(_ requests: [PendingRequest], _ error: RedisError) {
        for request in requests { complete(request, with: .failure(error.adding(context: request.name))) }
    }

    private func setStatusLocked(_ status: Status) {
        shared.status = status
        publishedStatus.store(status.rawValue, ordering: .relaxed)
    }

    private func wakeSocketLocked() {
        if shared.socket >= 0 { shutdownSocket(shared.socket) }
    }

    private func unavailableError() -> RedisError {
        let reason = shared.lastError.map { ": \($0.message)" } ?? ""
        return RedisError(
            .connectionFailed, "no connection to \(configuration.serverDescription) is available\(reason)",
            context: configuration.serverDescription)
    }
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
        let reason = workers.lazy.compactMap(\.lastError).first.map { ": \($0.message)" } ?? ""
        throw RedisError(
            .connectionFailed, "no connection to \(configuration.serverDescription) is available\(reason)",
            context: configuration.serverDescription)
    }
}

extension RedisError {
    static func cancelled(_ command: String) -> RedisError {
        RedisError(.cancelled, "the waiting task was cancelled", context: command)
    }
}
