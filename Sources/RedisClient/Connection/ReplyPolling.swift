/// Decides, batch by batch, whether a connection thread polls for a reply instead of sleeping until it comes.
///
/// Polling pays when the reply arrives within the window: the thread is awake to read it, and the wake-up it would
/// otherwise need is saved. When replies take longer (a distant or loaded server), polling burns the whole window
/// and saves nothing. So each hit earns a credit and each miss spends one; with no credit left the thread stops
/// polling, except for one small batch in `probeInterval`, whose hit turns polling back on.
struct ReplyPolling {
    /// Batches with more requests than this take longer to answer than any useful window: they never poll.
    static let largestPolledBatch = 4
    /// Past a millisecond, a thread wake-up is a small share of the wait: polling longer only burns CPU.
    static let longestWindow = Duration.milliseconds(1)
    /// A new connection polls through this many misses in a row: the first replies after a connect come from a
    /// server that was itself asleep, and say nothing about how far away it is.
    static let initialCredit = 4
    private static let creditLimit = 16
    private static let probeInterval = 64

    let windowNanoseconds: UInt64
    private var credit = initialCredit
    private var skipped = 0

    init(window: Duration) {
        windowNanoseconds = min(window, Self.longestWindow).nanoseconds
    }

    /// Whether to poll for the replies of a batch of `count` requests.
    mutating func shouldPoll(batchOf count: Int) -> Bool {
        guard windowNanoseconds > 0, count <= Self.largestPolledBatch else { return false }
        if credit > 0 { return true }
        skipped += 1
        if skipped < Self.probeInterval { return false }
        skipped = 0
        return true
    }

    /// Records whether the reply was there before the window ran out. A hit after polling had stopped (a probe)
    /// turns it back on with room for one miss.
    mutating func record(hit: Bool) {
        credit = hit ? min(max(credit, 1) + 1, Self.creditLimit) : max(credit - 1, 0)
    }
}
