import Testing

@testable import RedisClient

/// The connection's lifecycle without a server or a thread: each test drives the machine as the worker's thread
/// would and checks what it decides.
@Suite struct ConnectionStateMachineTests {
    struct Request: ConnectionRequest, Equatable {
        var id: Int
        var isAbandoned = false
    }

    typealias Machine = ConnectionStateMachine<Request>

    let backoff = RedisConfiguration.Backoff(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))
    let noServer = RedisError(.connectionFailed, "connection refused")

    func machine(depth: Int = 64) -> Machine { Machine(backoff: backoff, pipelineDepth: depth) }

    func batch(_ machine: inout Machine) -> [Request]? {
        var abandoned = 0
        var batch: [Request] = []
        guard case .write = machine.nextBatch(into: &batch, abandoned: &abandoned) else { return nil }
        return batch
    }

    @Test func theFirstRequestStartsTheThreadAndLaterOnesWakeItOnlyWhenItWaits() {
        var machine = machine()
        guard case .queuedStartingThread = machine.submit(Request(id: 1)) else {
            Issue.record("the first request did not start the thread")
            return
        }
        #expect(machine.status == .connecting)
        guard case .queued(wakeThread: false) = machine.submit(Request(id: 2)) else {
            Issue.record("a request while connecting was not queued quietly")
            return
        }
        let connected1 = machine.connected()
        #expect(connected1)
        #expect(batch(&machine) == [Request(id: 1), Request(id: 2)])
        var abandoned = 0
        var unused: [Request] = []
        guard case .wait = machine.nextBatch(into: &unused, abandoned: &abandoned) else {
            Issue.record("an empty queue did not make the thread wait")
            return
        }
        guard case .queued(wakeThread: true) = machine.submit(Request(id: 3)) else {
            Issue.record("a request for a waiting thread did not wake it")
            return
        }
        #expect(batch(&machine) == [Request(id: 3)])
    }

    @Test func batchesStopAtThePipelineDepthAndKeepTheOrder() {
        var machine = machine(depth: 2)
        for id in 1...5 { _ = machine.submit(Request(id: id)) }
        let connected2 = machine.connected()
        #expect(connected2)
        #expect(batch(&machine)?.map(\.id) == [1, 2])
        #expect(batch(&machine)?.map(\.id) == [3, 4])
        #expect(batch(&machine)?.map(\.id) == [5])
    }

    @Test func aFailedConnectFailsWhatWasQueuedAndBacksOffLongerEachTime() {
        var machine = machine()
        _ = machine.submit(Request(id: 1))
        var ceilings: [Duration] = []
        for attempt in 0..<8 {
            let (failed, delay) = machine.connectFailed(noServer)
            #expect(failed.map(\.id) == (attempt == 0 ? [1] : []))
            #expect(machine.status == .backingOff)
            #expect(machine.lastError?.message == "connection refused")
            ceilings.append(delay)
            let retrying1 = machine.backoffEnded()
            #expect(retrying1)
            #expect(machine.status == .connecting)
        }
        // Half jitter: attempt n waits between half and all of min(50 ms * 2^n, 2 s).
        for (attempt, delay) in ceilings.enumerated() {
            let ceiling = min(Duration.milliseconds(50) * (1 << attempt), .seconds(2))
            #expect(delay >= ceiling / 2 && delay <= ceiling, "attempt \(attempt): \(delay)")
        }
        // A success resets the backoff.
        let connected3 = machine.connected()
        #expect(connected3)
        #expect(machine.failedAttempts == 0 && machine.lastError == nil)
        let (_, first) = machine.connectFailed(noServer)
        #expect(first <= .milliseconds(50))
    }

    @Test func whileBackingOffRequestsFailAtOnceWithTheReason() {
        var machine = machine()
        _ = machine.submit(Request(id: 1))
        _ = machine.connectFailed(noServer)
        guard case .fail(let error) = machine.submit(Request(id: 2)) else {
            Issue.record("a request was queued behind a dead connection")
            return
        }
        #expect(error.code == .connectionFailed)
        #expect(error.message.hasSuffix(": connection refused"), "the reason of the last failed connect")
        #expect(machine.queue.isEmpty)
        // The backoff sleep goes on until its deadline, and no longer.
        #expect(machine.keepsBackingOff(now: 10, until: 20))
        #expect(!machine.keepsBackingOff(now: 20, until: 20))
    }

    @Test func aMasterChangeEndsTheBackoffSleepAtOnce() {
        var machine = machine()
        _ = machine.start()
        _ = machine.connectFailed(noServer)
        #expect(machine.keepsBackingOff(now: 0, until: 1_000_000_000))
        machine.masterChanged()
        #expect(!machine.keepsBackingOff(now: 0, until: 1_000_000_000))
        let retrying2 = machine.backoffEnded()
        #expect(retrying2)
        #expect(machine.keepsBackingOff(now: 0, until: 1_000_000_000), "retryNow is spent by one attempt")
    }

    @Test func aBatchPutBackAfterAnIdleCloseGoesFirstInItsOrder() {
        var machine = machine()
        for id in 1...3 { _ = machine.submit(Request(id: id)) }
        let connected4 = machine.connected()
        #expect(connected4)
        let taken = batch(&machine) ?? []
        _ = machine.submit(Request(id: 4))
        // The server had closed the idle socket: nothing was written, the batch goes back untouched.
        #expect(Machine.shouldCheckIdleSocket(lastUse: 0, now: 1_000_000_001))
        #expect(!Machine.shouldCheckIdleSocket(lastUse: 0, now: 999_999_999))
        machine.requeue(taken)
        machine.connectionLost()
        #expect(machine.status == .connecting)
        let connected5 = machine.connected()
        #expect(connected5)
        #expect(batch(&machine)?.map(\.id) == [1, 2, 3, 4])
    }

    @Test func requestsCancelledBeforeTheyWereWrittenAreDroppedAndCounted() {
        var machine = machine()
        _ = machine.submit(Request(id: 1))
        _ = machine.submit(Request(id: 2, isAbandoned: true))
        _ = machine.submit(Request(id: 3))
        let connected6 = machine.connected()
        #expect(connected6)
        var abandoned = 0
        var batch: [Request] = []
        guard case .write = machine.nextBatch(into: &batch, abandoned: &abandoned) else {
            Issue.record("no batch")
            return
        }
        #expect(batch.map(\.id) == [1, 3])
        #expect(abandoned == 1)
    }

    @Test func shutdownFailsTheQueueOnceAndEndsTheThread() {
        var machine = machine()
        _ = machine.submit(Request(id: 1))
        _ = machine.submit(Request(id: 2))
        let action = machine.shutdown()
        #expect(action?.failed.map(\.id) == [1, 2])
        #expect(action?.exitedWithoutThread == false)
        let closing1 = machine.shutdown()
        #expect(closing1 == nil, "a second shutdown does nothing")
        guard case .fail(let error) = machine.submit(Request(id: 3)) else {
            Issue.record("a closed connection took a request")
            return
        }
        #expect(error.code == .closed)
        var abandoned = 0
        var unused: [Request] = []
        guard case .exit = machine.nextBatch(into: &unused, abandoned: &abandoned) else {
            Issue.record("the thread was not told to exit")
            return
        }
        let connected7 = machine.connected()
        #expect(!connected7, "a connect that finishes after shutdown is not used")
        let retrying3 = machine.backoffEnded()
        #expect(!retrying3)
        // A worker that never started has no thread to report its exit.
        var idle = self.machine()
        let closing2 = idle.shutdown()
        #expect(closing2?.exitedWithoutThread == true)
    }

    @Test func aThreadTheSystemRefusedFailsTheQueueAndTheNextRequestTriesAgain() {
        var machine = machine()
        _ = machine.submit(Request(id: 1))
        let failed = machine.threadDidNotStart()
        #expect(failed.map(\.id) == [1])
        #expect(machine.status == .notStarted)
        guard case .queuedStartingThread = machine.submit(Request(id: 2)) else {
            Issue.record("the next request did not try to start the thread again")
            return
        }
        // Refused again, then closed: no thread ran, so the close must not wait for one to exit.
        _ = machine.threadDidNotStart()
        let closing = machine.shutdown()
        #expect(closing?.exitedWithoutThread == true)
    }
}
