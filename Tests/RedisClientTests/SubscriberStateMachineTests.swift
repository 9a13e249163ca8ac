import Testing

@testable import RedisClient

/// The subscriber's lifecycle without a server or a thread: confirmations, gaps, reconnects and pings, driven with
/// explicit times.
@Suite struct SubscriberStateMachineTests {
    let second: UInt64 = 1_000_000_000
    let lost = RedisError(.connectionClosed, "the server closed the connection")

    func machine() -> SubscriberStateMachine {
        SubscriberStateMachine(
            pingInterval: .seconds(1), pingTimeout: .seconds(2),
            backoff: RedisConfiguration.Backoff(initialDelay: .milliseconds(50), maximumDelay: .seconds(2)))
    }

    @Test func subscribedOnceEveryConfirmationIsIn() {
        var machine = machine()
        let report1 = machine.sessionStarted(confirmations: 2, now: 0)
        #expect(report1 == nil)
        let report2 = machine.confirmed()
        #expect(report2 == nil)
        let report3 = machine.confirmed()
        #expect(report3 == false, "the first subscription is not a resubscription")
        let report4 = machine.confirmed()
        #expect(report4 == nil, "a stray confirmation reports nothing")
        // Nothing to confirm (tracking with no channel): subscribed at once.
        var bare = self.machine()
        let report5 = bare.sessionStarted(confirmations: 0, now: 0)
        #expect(report5 == false)
    }

    @Test func aGapIsReportedOnceThenTheResubscriptionSaysSo() {
        var machine = machine()
        _ = machine.sessionStarted(confirmations: 1, now: 0)
        _ = machine.confirmed()
        // The connection is lost: one report, and the first reconnect is immediate.
        let first = machine.sessionEnded(lost)
        #expect(first.report?.code == .connectionClosed)
        #expect(first.delay == nil)
        // The reconnects keep failing: no more reports, and growing delays.
        var delays: [Duration] = []
        for _ in 0..<5 {
            let next = machine.sessionEnded(RedisError(.connectionFailed, "refused"))
            #expect(next.report == nil)
            delays.append(next.delay ?? .zero)
        }
        for (attempt, delay) in delays.enumerated() {
            let ceiling = min(Duration.milliseconds(50) * (1 << attempt), .seconds(2))
            #expect(delay >= ceiling / 2 && delay <= ceiling)
        }
        // Back: a resubscription, and the next loss is reported again and retried at once.
        _ = machine.sessionStarted(confirmations: 1, now: 10 * second)
        let report6 = machine.confirmed()
        #expect(report6 == true)
        let again = machine.sessionEnded(lost)
        #expect(again.report != nil && again.delay == nil)
    }

    @Test func aServerThatNeverSubscribesBacksOffFromTheSecondAttempt() {
        var machine = machine()
        let first = machine.sessionEnded(RedisError(.connectionFailed, "refused"))
        #expect(first.report != nil && first.delay == nil)
        let reconnect1 = machine.sessionEnded(RedisError(.connectionFailed, "refused"))
        #expect(reconnect1.delay != nil)
        #expect(!machine.hasSubscribedOnce)
    }

    @Test func pingsEveryIntervalAndGivesUpAfterTheTimeout() {
        var machine = machine()
        _ = machine.sessionStarted(confirmations: 1, now: 0)
        let tick1 = machine.tick(now: second / 2)
        #expect(tick1 == .wait(nanoseconds: second / 2, sendPing: false))
        let tick2 = machine.tick(now: second)
        #expect(tick2 == .wait(nanoseconds: second, sendPing: true))
        machine.pongReceived()
        let tick3 = machine.tick(now: 2 * second)
        #expect(tick3 == .wait(nanoseconds: second, sendPing: true))
        // No PONG: more pings go out, and the timeout counts from the oldest unanswered one.
        let tick4 = machine.tick(now: 3 * second)
        #expect(tick4 == .wait(nanoseconds: second, sendPing: true))
        let tick5 = machine.tick(now: 4 * second)
        #expect(tick5 == .wait(nanoseconds: second, sendPing: true))
        let tick6 = machine.tick(now: 4 * second + 1)
        #expect(tick6 == .timedOut)
        // A new session starts with a clean slate.
        _ = machine.sessionStarted(confirmations: 1, now: 5 * second)
        let tick7 = machine.tick(now: 5 * second + 1)
        #expect(tick7 == .wait(nanoseconds: second - 1, sendPing: false))
    }
}
