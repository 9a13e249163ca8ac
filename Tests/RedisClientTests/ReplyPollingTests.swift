import Testing

@testable import RedisClient

@Suite struct ReplyPollingTests {
    @Test func pollsSmallBatchesOnlyAndNeverWithAZeroWindow() {
        var polling = ReplyPolling(window: .microseconds(50))
        let lone = polling.shouldPoll(batchOf: 1)
        let largestPolled = polling.shouldPoll(batchOf: ReplyPolling.largestPolledBatch)
        let larger = polling.shouldPoll(batchOf: ReplyPolling.largestPolledBatch + 1)
        #expect(lone && largestPolled && !larger)

        #expect(ReplyPolling(window: .seconds(3600)).windowNanoseconds == 1_000_000)
        #expect(ReplyPolling(window: .microseconds(-5)).windowNanoseconds == 0)

        var disabled = ReplyPolling(window: .zero)
        let polled = polls(&disabled, times: 100)
        #expect(polled == 0)
    }

    @Test func stopsPollingWhenMissesLeadAndProbesNowAndThen() {
        var polling = ReplyPolling(window: .microseconds(50))
        // A new connection rides out a few slow first replies.
        for _ in 0..<ReplyPolling.initialCredit {
            let polls = polling.shouldPoll(batchOf: 1)
            #expect(polls)
            polling.record(hit: false)
        }
        // A slow server: one small batch in 64 still polls, to notice when it becomes fast again.
        let whileSlow = polls(&polling, times: 640)
        #expect(whileSlow == 10)

        // One probe that hits turns polling back on; two misses in a row turn it off again.
        polling.record(hit: true)
        let onceFast = polls(&polling, times: 10)
        #expect(onceFast == 10)
        polling.record(hit: false)
        polling.record(hit: false)
        let afterTwoMisses = polls(&polling, times: 63)
        #expect(afterTwoMisses == 0)
    }

    @Test func aLongRunOfHitsAbsorbsAFewMisses() {
        var polling = ReplyPolling(window: .microseconds(50))
        for _ in 0..<100 { polling.record(hit: true) }
        for _ in 0..<10 { polling.record(hit: false) }
        let stillPolls = polling.shouldPoll(batchOf: 1)
        #expect(stillPolls)
    }

    /// How many of `times` lone-request batches the policy polls for.
    private func polls(_ polling: inout ReplyPolling, times: Int) -> Int {
        var polled = 0
        for _ in 0..<times where polling.shouldPoll(batchOf: 1) { polled += 1 }
        return polled
    }
}
