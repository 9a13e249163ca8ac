/// The lifecycle of one pooled connection and the requests on it, with no I/O.
///
/// The ``ConnectionWorker`` holds it under its lock, tells it what happened, and carries out what it returns: start
/// the thread, write this batch, resume these waiters with this result. The machine owns every request from submit
/// to its last reply, and every path that takes a request out of it hands back its waiter, so each waiter is resumed
/// exactly once: by its reply, a failed connect, a lost connection, a cancellation or the shutdown.
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
///
/// Requests are kept in two arrays in submission order, the queue and the batch in flight, and found by their
/// ``RequestID`` only when cancelled: replies arrive in order, so the hot path never searches.
struct ConnectionStateMachine<Waiter> {
    enum Status: Int, Sendable {
        case notStarted, connecting, connected, backingOff, shutDown
    }

    /// Names one submitted request, for ``cancel(_:)``.
    struct RequestID: Hashable, Sendable {
        let value: UInt64
        init(_ value: UInt64) { self.value = value }
    }

    /// A waiter the machine hands back to be failed, with its request's name for the error's context.
    struct Owed {
        let waiter: Waiter
        let name: String
    }

    /// What the caller of ``submit(_:waiter:)`` does next.
    enum SubmitAction {
        /// Queued; wake the thread if it sleeps waiting for work.
        case queued(wakeThread: Bool)
        /// Queued as the first request: start the connection thread.
        case queuedStartingThread
        /// Refused: the machine did not take the waiter; resume it with this error now.
        case fail(RedisError)
    }

    /// What the connection thread does next.
    enum BatchAction {
        /// Write the requests put in the batch and read their replies.
        case write
        /// Nothing to do: wait until woken.
        case wait
        /// The worker was shut down: leave the loop.
        case exit
    }

    /// What ``shutdown()`` asks of the worker.
    struct ShutdownAction {
        /// Resume these with "closed": every request queued or waiting for its reply.
        var failed: [Owed]
        /// No thread ever ran, so nobody else will report the worker exited.
        var exitedWithoutThread: Bool
    }

    private struct Entry {
        let id: UInt64
        let request: ConnectionRequest
        /// `nil` once its caller was resumed (a cancellation), or from the start for a request nobody waits for.
        var waiter: Waiter?
        /// Nobody waits for the reply: written all the same, its reply read and dropped.
        let detached: Bool

        /// Its caller gave up before it was written: nothing is owed on the wire, so it is not sent.
        var isAbandoned: Bool { waiter == nil && !detached }

        var owed: Owed? { waiter.map { Owed(waiter: $0, name: request.name) } }
    }

    private(set) var status: Status = .notStarted
    private var queue: [Entry] = []
    /// The batch written last; `inFlightHead` is the first whose reply has not been read.
    private var inFlight: [Entry] = []
    private var inFlightHead = 0
    /// The error of the last failed connect, reported to callers refused while backing off.
    private(set) var lastError: RedisError?
    /// Failed connects since the last success: the backoff attempt.
    private(set) var failedAttempts = 0
    /// The thread sleeps waiting for work, and no submit has woken it yet.
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

    /// Requests queued or waiting for their replies, for the pool's choice of the least loaded connection.
    var outstanding: Int { queue.count + inFlight.count - inFlightHead }

    /// Whether a batch is written and not all of its replies are read.
    var hasRequestsInFlight: Bool { inFlightHead < inFlight.count }

    // MARK: Callers

    /// A caller's request, under an ID of the caller's choosing (unique per connection), so that the caller's
    /// cancellation handler can name it; `waiter` is `nil` for a request nobody waits for.
    mutating func submit(_ request: ConnectionRequest, id: RequestID, waiter: Waiter?) -> SubmitAction {
        switch status {
        case .shutDown:
            return .fail(RedisError(.closed, "the client was closed"))
        case .backingOff:
            return .fail(unavailableError)
        case .notStarted:
            status = .connecting
            queue.append(Entry(id: id.value, request: request, waiter: waiter, detached: waiter == nil))
            return .queuedStartingThread
        case .connecting, .connected:
            queue.append(Entry(id: id.value, request: request, waiter: waiter, detached: waiter == nil))
            let wake = threadIsWaiting
            // One wake-up is enough: the thread takes everything queued when it runs.
            threadIsWaiting = false
            return .queued(wakeThread: wake)
        }
    }

    /// The caller of `id` stopped waiting: its waiter, to resume with a cancellation, or `nil` when it was answered
    /// already. A queued request is dropped; one already written keeps its place, so its reply is read and dropped
    /// and the connection stays in step.
    mutating func cancel(_ id: RequestID) -> Waiter? {
        if let index = queue.firstIndex(where: { $0.id == id.value }) {
            return queue.remove(at: index).waiter
        }
        var index = inFlightHead
        while index < inFlight.count {
            if inFlight[index].id == id.value {
                defer { inFlight[index].waiter = nil }
                return inFlight[index].waiter
            }
            index += 1
        }
        return nil
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
    mutating func threadDidNotStart() -> [Owed] {
        lastError = RedisError(.connectionFailed, "the system refused to start a connection thread")
        status = .notStarted
        return takeQueue()
    }

    /// Closes the worker; `nil` when it was closed already. Every waiter is handed back at once, those in flight
    /// included, so a close never waits for a reply.
    mutating func shutdown() -> ShutdownAction? {
        guard status != .shutDown else { return nil }
        let started = status != .notStarted
        status = .shutDown
        return ShutdownAction(failed: takeQueue() + takeInFlightWaiters(), exitedWithoutThread: !started)
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
    mutating func connectFailed(_ error: RedisError) -> (failed: [Owed], delay: Duration) {
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
    /// The batch is in flight from here until its replies are read or the connection is lost.
    mutating func nextBatch(into batch: inout [ConnectionRequest]) -> BatchAction {
        threadIsWaiting = false
        batch.removeAll(keepingCapacity: true)
        if status == .shutDown { return .exit }
        precondition(!hasRequestsInFlight, "a batch was taken before the replies of the last one were read")
        inFlight.removeAll(keepingCapacity: true)
        inFlightHead = 0
        var taken = 0
        for entry in queue {
            taken += 1
            guard !entry.isAbandoned else { continue }
            inFlight.append(entry)
            batch.append(entry.request)
            if batch.count == pipelineDepth { break }
        }
        if taken == queue.count {
            queue.removeAll(keepingCapacity: true)
        } else {
            queue.removeFirst(taken)
        }
        guard !batch.isEmpty else {
            threadIsWaiting = true
            return .wait
        }
        return .write
    }

    /// The replies of the first request in flight were read: its waiter, or `nil` when nobody waits any more (it
    /// was cancelled, or sent detached).
    mutating func replyArrived() -> Waiter? {
        guard inFlightHead < inFlight.count else { return nil }
        let waiter = inFlight[inFlightHead].waiter
        inFlight[inFlightHead].waiter = nil
        inFlightHead += 1
        return waiter
    }

    /// The connection broke, or was dropped on purpose: the waiters of the requests in flight, to fail (they may
    /// have run); the queue stays for the next connection, which the next turn makes at once.
    mutating func connectionLost() -> [Owed] {
        if status != .shutDown { status = .connecting }
        return takeInFlightWaiters()
    }

    /// The thread leaves: every waiter still held, to fail with "closed".
    mutating func threadExiting() -> [Owed] {
        status = .shutDown
        return takeQueue() + takeInFlightWaiters()
    }

    private mutating func takeQueue() -> [Owed] {
        let waiters = queue.compactMap(\.owed)
        queue = []
        return waiters
    }

    private mutating func takeInFlightWaiters() -> [Owed] {
        let waiters = inFlight[inFlightHead...].compactMap(\.owed)
        inFlight.removeAll(keepingCapacity: true)
        inFlightHead = 0
        return waiters
    }
}
