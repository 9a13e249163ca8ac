@testable import RedisClient
import Testing

/// The discovery and failover rules, with no server: what the monitor does with each answer.
@Suite struct SentinelStateTests {
    typealias Endpoint = RedisConfiguration.Endpoint
    let first: Endpoint = .tcp(host: "10.0.0.1", port: 26379)
    let second: Endpoint = .tcp(host: "10.0.0.2", port: 26379)
    let third: Endpoint = .tcp(host: "10.0.0.3", port: 26379)
    let masterA: Endpoint = .tcp(host: "10.0.1.1", port: 6379)
    let masterB: Endpoint = .tcp(host: "10.0.1.2", port: 6379)
    let masterC: Endpoint = .tcp(host: "10.0.1.3", port: 6379)

    private func state() -> SentinelState {
        SentinelState(masterName: "rsess", sentinels: [first, second, third])
    }

    @Test func discoveryAsksInOrderAndTheSentinelThatAnsweredGoesFirst() {
        var state = state()
        #expect(state.sentinels == [first, second, third])
        #expect(state.master == nil)
        state.sentinelFailed(first)  // down
        #expect(state.sentinels == [second, third, first])
        let changed1 = state.discovered(masterA, from: third)
        #expect(changed1)
        #expect(state.sentinels == [third, second, first])
        #expect(state.master == masterA)
        #expect(state.generation == 1)
        // The same answer again changes nothing.
        let changed2 = state.discovered(masterA, from: third)
        #expect(!changed2)
        #expect(state.generation == 1)
    }

    @Test func aSentinelThatNamedAReplicaIsAskedLastAndTheMasterForgotten() {
        var state = state()
        let changed3 = state.discovered(masterA, from: first)
        #expect(changed3)
        // ROLE on masterA said "slave": the sentinel lied (or lags behind a failover).
        let changed4 = state.nodeIsNotMaster(masterA)
        #expect(changed4)
        #expect(state.master == nil)
        #expect(state.generation == 2)
        #expect(state.sentinels == [second, third, first])
        let changed5 = state.discovered(masterB, from: second)
        #expect(changed5)
        #expect(state.master == masterB)
        #expect(state.generation == 3)
    }

    @Test func aReadOnlyReportAboutAnOldMasterChangesNothing() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        _ = state.switchAnnounced(masterName: "rsess", to: masterB)
        let generation = state.generation
        // A connection still on masterA sees -READONLY after the switch: already handled.
        let changed6 = state.nodeIsNotMaster(masterA)
        #expect(!changed6)
        #expect(state.master == masterB)
        #expect(state.generation == generation)
        // On the current master it forgets it.
        let changed7 = state.nodeIsNotMaster(masterB)
        #expect(changed7)
        #expect(state.master == nil)
    }

    @Test func theFirstSwitchAnnouncementWinsAndLaterCopiesAreIgnored() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        let changed8 = state.switchAnnounced(masterName: "rsess", to: masterB)
        #expect(changed8)
        #expect(state.master == masterB)
        #expect(state.generation == 2)
        // The other sentinels announce the same switch.
        let changed9 = state.switchAnnounced(masterName: "rsess", to: masterB)
        #expect(!changed9)
        let changed10 = state.switchAnnounced(masterName: "rsess", to: masterB)
        #expect(!changed10)
        #expect(state.generation == 2)
        // Another master's failover is not ours.
        let changed11 = state.switchAnnounced(masterName: "other", to: masterC)
        #expect(!changed11)
        #expect(state.master == masterB)
    }

    @Test func twoSwitchesInARowEachBumpTheGeneration() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        let changed12 = state.switchAnnounced(masterName: "rsess", to: masterB)
        #expect(changed12)
        let changed13 = state.switchAnnounced(masterName: "rsess", to: masterA)
        #expect(changed13)
        #expect(state.master == masterA)
        #expect(state.generation == 3)
    }

    @Test func aPollLearnsTheEpochThenMovesOnlyToANewerOne() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        // The first poll only learns the epoch of the master in use.
        let changed14 = state.polled([
            .init(sentinel: first, master: masterA, epoch: 4), .init(sentinel: second, master: masterA, epoch: 4),
        ])
        #expect(!changed14)
        #expect(state.epoch == 4)
        #expect(state.generation == 1)
        // A lagging sentinel with an older epoch is not followed.
        let changed15 = state.polled([.init(sentinel: third, master: masterC, epoch: 3)])
        #expect(!changed15)
        #expect(state.master == masterA)
        // A newer epoch is: the announcement was lost.
        let changed16 = state.polled([
            .init(sentinel: second, master: masterB, epoch: 5), .init(sentinel: third, master: masterA, epoch: 4),
        ])
        #expect(changed16)
        #expect(state.master == masterB)
        #expect(state.epoch == 5)
    }

    @Test func aPollDoesNotUndoAnAnnouncedSwitchTheOtherSentinelsHaveNotSeenYet() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        _ = state.polled([.init(sentinel: first, master: masterA, epoch: 7)])
        let changed17 = state.switchAnnounced(masterName: "rsess", to: masterB)
        #expect(changed17)
        #expect(state.epoch == 8)
        // Two sentinels still report the old master at the old epoch; one already the new one.
        let changed18 = state.polled([
            .init(sentinel: first, master: masterA, epoch: 7), .init(sentinel: second, master: masterA, epoch: 7),
            .init(sentinel: third, master: masterB, epoch: 8),
        ])
        #expect(!changed18)
        #expect(state.master == masterB)
    }

    @Test func aPollWithoutAnswersChangesNothing() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        let changed19 = state.polled([])
        #expect(!changed19)
        #expect(state.master == masterA)
    }

    @Test func onEqualNewestEpochsTheMajorityWins() {
        var state = state()
        _ = state.discovered(masterA, from: first)
        _ = state.polled([.init(sentinel: first, master: masterA, epoch: 1)])
        let changed20 = state.polled([
            .init(sentinel: first, master: masterB, epoch: 2), .init(sentinel: second, master: masterC, epoch: 2),
            .init(sentinel: third, master: masterB, epoch: 2),
        ])
        #expect(changed20)
        #expect(state.master == masterB)
    }

    @Test func aLoneSentinelIsNeverReordered() {
        var state = SentinelState(masterName: "rsess", sentinels: [first])
        state.sentinelFailed(first)
        #expect(state.sentinels == [first])
    }
}
