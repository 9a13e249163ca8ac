/// A request as the connection's state machine sees it: something queued that may have been given up on.
protocol ConnectionRequest {
    /// Its caller stopped waiting before it was written (the task was cancelled): nothing is owed on the wire, so
    /// it is dropped instead of sent.
    var isAbandoned: Bool { get }
}

/// The lifecycle of one pooled connection, with no I/O: the ``ConnectionWorker`` holds it under its lock, asks it
/// what to do, and does it (spawns the thread, connects, sleeps, writes, fails callers).
///
/// ```
/// notStarted ──first request──▶ connecting ──connected──▶ connected
///                                   ▲   │                    │
///                      backoff over │   │ connect failed     │ connection lost
///                                   │   ▼                    │
///                                backingOff ◀────────────────┘ (only via a failed reconnect)
/// any state ──shutdown──▶ shutDown
/// ```
///
/// While backing off the connection refuses requests at once, so the pool routes around it instead of queueing
/// callers behind a dead socket. A lost connection is retried at once; only failed connects back off, and the delay
/// grows with each failure until a connect succeeds.
struct ConnectionStateMachine<Request: ConnectionRequest> {
    enum Status: Int, Sendable {
        case notStarted, connecting, connected, backingOff, shutDown
    }

    /// What the caller of ``submit(_:)`` does next.
    enum SubmitAction {
        /// Queued; wake the thread if it sleeps waiting for work.
        case queued(wakeThread: Bool)
        /// Queued as the first request: start the connection thread.
        case queuedStartingThread
        /// Refused: answer the caller with this error now.
        case fail(RedisError)
    }

    /// What the connection thread does next.
    enum BatchAction {
        /// Write the requests put in the batch and read their replies.
        case write
        /// Nothing to do: wait on the condition until a request arrives.
        case wait
        /// The worker was shut down: leave the loop.
        case exit
    }

    /// What ``shutdown()`` asks of the worker.
    struct ShutdownAction {
        /// Fail these queued requests with "closed".
        var failed: [Request]
        /// No thread ever ran, so nobody else will report the worker exited.
        var exitedWithoutThread: Bool
    }

    private(set) var status: Status = .notStarted
    private(set) var queue: [Request] = []
    /// The error of the last failed connect, reported to callers refused while backing off.
    private(set) var lastError: RedisError?
    /// Failed connects since the last success: the backoff attempt.
    private(set) var failedAttempts = 0
    /// The thread is blocked on the condition waiting for work.
    private(set) var threadIsWaiting = false
    /// A master change asked for an attempt now: the backoff sleep ends early.
    private(set) var retryNow = false

    let backoff: RedisConfiguration.Backoff
    /// Most requests written in one batch.
    let pipelineDepth: Int
    /// The server, as errors name it.
    let serverDescription: String

    init(backoff: RedisConfiguration.Backoff, pipelineDepth: Int, serverDescription: String = "the server") {
        self.backoff = backoff
        self.pipelineDepth = max(1, pipelineDepth)
        self.serverDescription = serverDescription
    }

    /// What a caller refused while backing off is told: no connection, and why the last connect failed.
    var unavailableError: RedisError { Self.unavailable(serverDescription, lastError: lastError) }

    /// "No connection to the server is available", with the reason when one is known.
    static func unavailable(_ serverDescription: String, lastError: RedisError?) -> RedisError {
        let reason = lastError.map { ": \($0.message)" } ?? ""
        return RedisError(
            .connectionFailed, "no connection to \(serverDescription) is available\(reason)", context: serverDescription
        )
    }

    var acceptsRequests: Bool { status == .notStarted || status == .connecting || status == .connected }

    // MARK: Callers

    /// A caller's request.
    mutating func submit(_ request: Request) -> SubmitAction {
        switch status {
        case .shutDown:
            return .fail(RedisError(.closed, "the client was closed"))
        case .backingOff:
            return .fail(unavailableError)
        case .notStarted:
            status = .connecting
            queue.append(request)
            return .queuedStartingThread
        case .connecting, .connected:
            queue.append(request)
            return .queued(wakeThread: threadIsWaiting)
        }
    }

    /// Starts connecting before any request; `true` when the thread must be started.
    mutating func start() -> Bool {
        guard status == .notStarted else { return false }
        status = .connecting
        return true
    }

    /// The system refused to start the thread: fail what was queued, and try to start one again with the next
    /// request. (Backing off would need a thread to end the backoff, and a close would wait for a thread that never
    /// ran.)
    mutating func threadDidNotStart() -> [Request] {
        lastError = RedisError(.connectionFailed, "the system refused to start a connection thread")
        status = .notStarted
        return takeQueue()
    }

    /// Closes the worker; `nil` when it was closed already.
    mutating func shutdown() -> ShutdownAction? {
        guard status != .shutDown else { return nil }
        let started = status != .notStarted
        status = .shutDown
        return ShutdownAction(failed: takeQueue(), exitedWithoutThread: !started)
    }

    /// The sentinels announced a new master: a backoff sleep ends now, since the next attempt goes elsewhere.
    mutating func masterChanged() {
        retryNow = true
    }

    // MARK: The connection thread

    var isShutDown: Bool { status == .shutDown }

    /// A connect succeeded; `false` when the worker was shut down meanwhile (close the new connection and exit).
    mutating func connected() -> Bool {
        guard status != .shutDown else { return false }
        status = .connected
        lastError = nil
        failedAttempts = 0
        return true
    }

    /// A connect failed: every queued request fails with `error`, and the thread sleeps for the returned delay.
    mutating func connectFailed(_ error: RedisError) -> (failed: [Request], delay: Duration) {
        lastError = error
        if status != .shutDown { status = .backingOff }
        let delay = backoff.delay(attempt: failedAttempts)
        failedAttempts += 1
        return (takeQueue(), delay)
    }

    /// Whether the backoff sleep goes on at `now`.
    func keepsBackingOff(now: UInt64, until deadline: UInt64) -> Bool {
        status != .shutDown && !retryNow && now < deadline
    }

    /// The backoff sleep is over; `false` when the worker was shut down (exit).
    mutating func backoffEnded() -> Bool {
        retryNow = false
        guard status != .shutDown else { return false }
        status = .connecting
        return true
    }

    /// The next batch, into `batch` (emptied first; the thread keeps one buffer, so taking a batch under the lock
    /// allocates nothing): everything queued up to the pipeline depth, in order, without the abandoned requests.
    /// `abandoned` counts those dropped, which the worker no longer owes anyone.
    mutating func nextBatch(into batch: inout [Request], abandoned: inout Int) -> BatchAction {
        threadIsWaiting = false
        batch.removeAll(keepingCapacity: true)
        if status == .shutDown { return .exit }
        guard !queue.isEmpty else {
            threadIsWaiting = true
            return .wait
        }
        var taken = 0
        for request in queue {
            taken += 1
            if request.isAbandoned {
                abandoned += 1
            } else {
                batch.append(request)
            }
            if batch.count == pipelineDepth { break }
        }
        if taken == queue.count {
            queue.removeAll(keepingCapacity: true)
        } else {
            queue.removeFirst(taken)
        }
        return .write
    }

    /// A batch that was taken but not written (an idle connection the server had closed, or a connection to a
    /// master that is no longer one) goes back to the front of the queue, in order, for the next connection.
    mutating func requeue(_ batch: [Request]) {
        queue.insert(contentsOf: batch, at: 0)
    }

    /// The connection broke, or was dropped on purpose: the next turn connects again, at once.
    mutating func connectionLost() {
        if status != .shutDown { status = .connecting }
    }

    /// The thread leaves: whatever is still queued fails with "closed".
    mutating func threadExiting() -> [Request] {
        status = .shutDown
        return takeQueue()
    }

    /// A connection idle for longer than this may have been closed by the server (a restart, `CLIENT KILL`, a
    /// timeout): check before writing, so the first command after a restart does not fail.
    static var idleCheckNanoseconds: UInt64 { 1_000_000_000 }

    /// Whether to check the socket before writing a batch after it was last used at `lastUse`.
    static func shouldCheckIdleSocket(lastUse: UInt64, now: UInt64) -> Bool {
        now &- lastUse > idleCheckNanoseconds
    }

    private mutating func takeQueue() -> [Request] {
        let taken = queue
        queue = []
        return taken
    }
}
