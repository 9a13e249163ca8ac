/// One caller's request waiting for, or in flight on, a connection: a single command or a whole pipeline.
///
/// Every mutable field is guarded by the lock of the ``ConnectionWorker`` the request was submitted to.
final class PendingRequest: @unchecked Sendable {
    /// The encoded commands, written with one copy into hiredis' output buffer.
    let payload: [UInt8]
    /// How many replies belong to this request (1 for a command, N for a pipeline).
    let replyCount: Int
    /// The command name, for error context.
    let name: String
    /// Resumed exactly once: by the reply, a connection failure, shutdown or cancellation, whichever comes first.
    var continuation: UnsafeContinuation<Result<RedisValue, RedisError>, Never>?
    /// Set when the task was cancelled before the request reached the queue.
    var cancelledEarly = false
    /// Nobody waits for the reply: the request is written with the next batch and its reply read and dropped.
    let detached: Bool

    init(payload: [UInt8], replyCount: Int, name: String, detached: Bool = false) {
        self.payload = payload
        self.replyCount = replyCount
        self.name = name
        self.detached = detached
    }
}
