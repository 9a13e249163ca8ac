/// Decides, batch by batch, whether a connection thread polls for a reply instead of sleeping until it comes.
///
/// Polling pays when the reply arrives within the window: the thread is awake to read it, and the wake-up it would
/// otherwise need is saved. When replies take longer (a distant or loaded server), polling burns the whole window
/// and saves nothing, so the policy keeps a score of recent hits and misses and stops polling once misses lead. It
/// still polls one small batch in `probeInterval`, so a server that becomes fast again is noticed.
struct ReplyPolling {
    /// Batches with more requests than this take longer to answer than any useful window: they never poll.
    static let largestPolledBatch = 4
    private static let probeInterval = 64
    private static let scoreLimit = 16

    /// Past a millisecond, a thread wake-up is a small share of the wait: polling longer only burns CPU.
    static let longestWindow = Duration.milliseconds(1)

    let windowNanoseconds: UInt64
    private var score = 0
    private var skipped = 0

    init(window: Duration) {
        windowNanoseconds = min(window, Self.longestWindow).nanoseconds
    }

    /// Whether to poll for the replies of a batch of `count` requests.
    mutating func shouldPoll(batchOf count: Int) -> Bool {
        guard windowNanoseconds > 0, count <= Self.largestPolledBatch else { return false }
        if score >= 0 { return true }
        skipped += 1
        if skipped < Self.probeInterval { return false }
        skipped = 0
        return true
    }

    /// Records whether the reply was there before the window ran out.
    mutating func record(hit: Bool) {
        score = hit ? min(score + 1, Self.scoreLimit) : max(score - 1, -Self.scoreLimit)
    }
}
