/// The life of one subscriber connection, with no I/O: the ``SubscriberLoop`` thread tells it what happened (a
/// session began, a confirmation or a `PONG` arrived, the session ended) and the time, and it says what to report
/// and what to do next.
///
/// The rules it keeps:
/// - The subscription is reported once every confirmation is in: `subscribed`, or `subscribed(again:)` after a gap.
/// - A gap is reported once, however many reconnects fail in a row.
/// - The first reconnect after a working subscription is immediate; later ones back off, growing with each failure,
///   until a subscription is confirmed again.
/// - A `PING` goes out every interval; one left unanswered past the timeout ends the session.
struct SubscriberStateMachine {
    /// What the loop does at a given time in a session.
    enum Tick: Equatable {
        /// Send a `PING` first if `sendPing`, then wait for the socket at most this long.
        case wait(nanoseconds: UInt64, sendPing: Bool)
        /// The last `PING` went unanswered too long: the connection is dead.
        case timedOut
    }

    /// What to do when a session ended.
    struct Reconnect: Equatable {
        /// The gap to report, the first time in an outage.
        var report: RedisError?
        /// How long to wait before the next attempt; `nil` for at once.
        var delay: Duration?
    }

    private(set) var hasSubscribedOnce = false
    private(set) var inOutage = false
    private(set) var failedAttempts = 0
    private var pendingConfirmations = 0
    private var nextPing: UInt64 = 0
    private var pingSentAt: UInt64?

    let pingInterval: UInt64
    let pingTimeout: UInt64
    let backoff: RedisConfiguration.Backoff

    init(pingInterval: Duration, pingTimeout: Duration, backoff: RedisConfiguration.Backoff) {
        self.pingInterval = max(1, pingInterval.nanoseconds)
        self.pingTimeout = pingTimeout.nanoseconds
        self.backoff = backoff
    }

    /// A connection is up and `confirmations` subscriptions were sent on it. Returns the report when there is
    /// nothing to wait for (`true` when it is a resubscription after a gap).
    mutating func sessionStarted(confirmations: Int, now: UInt64) -> Bool? {
        pendingConfirmations = confirmations
        nextPing = now &+ pingInterval
        pingSentAt = nil
        return confirmations == 0 ? subscribed() : nil
    }

    /// One subscription was confirmed. Returns the report once the last one is in (`true` after a gap).
    mutating func confirmed() -> Bool? {
        guard pendingConfirmations > 0 else { return nil }
        pendingConfirmations -= 1
        return pendingConfirmations == 0 ? subscribed() : nil
    }

    /// A `PONG` arrived: the connection is alive.
    mutating func pongReceived() {
        pingSentAt = nil
    }

    /// What to do at `now`: ping, wait, or give the connection up.
    mutating func tick(now: UInt64) -> Tick {
        if let sent = pingSentAt, now &- sent > pingTimeout { return .timedOut }
        var sendPing = false
        if now >= nextPing {
            sendPing = true
            // The timeout counts from the oldest unanswered ping.
            if pingSentAt == nil { pingSentAt = now }
            nextPing = now &+ pingInterval
        }
        return .wait(nanoseconds: min(nextPing &- now, pingInterval), sendPing: sendPing)
    }

    /// The session (or the attempt to start one) ended with `error`.
    mutating func sessionEnded(_ error: RedisError) -> Reconnect {
        var reconnect = Reconnect(report: gap(error))
        if failedAttempts > 0 { reconnect.delay = backoff.delay(attempt: failedAttempts - 1) }
        failedAttempts += 1
        return reconnect
    }

    /// Messages may be missed from now on: the error to report, the first time in an outage.
    mutating func gap(_ error: RedisError) -> RedisError? {
        guard !inOutage else { return nil }
        inOutage = true
        return error
    }

    /// Every subscription is confirmed (for a subscription over several connections, on all of them). Returns
    /// whether this is a resubscription after a gap.
    mutating func subscribed() -> Bool {
        let again = hasSubscribedOnce
        hasSubscribedOnce = true
        inOutage = false
        failedAttempts = 0
        return again
    }
}
