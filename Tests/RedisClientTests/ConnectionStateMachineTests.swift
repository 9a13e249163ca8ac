import Testing

@testable import RedisClient

/// The connection's lifecycle and its requests without a server or a thread: each test drives the machine as the
/// worker would and checks what it decides, above all that every waiter comes back exactly once.
@Suite struct ConnectionStateMachineTests {
    /// A waiter is just a number here: the machine hands it back, and the test checks which ones and when.
    typealias Machine = ConnectionStateMachine<Int>

    let backoff = RedisConfiguration.Backoff(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))
    let noServer = RedisError(.connectionFailed, "connection refused")

    func machine(depth: Int = 64) -> Machine { Machine(backoff: backoff, pipelineDepth: depth) }

    func request(_ name: String = "GET") -> ConnectionRequest {
        ConnectionRequest(payload: Array(name.utf8), replyCount: 1, name: name)
    }

    @discardableResult
    func submit(_ machine: inout Machine, _ waiter: Int?, name: String = "GET") -> Machine.SubmitAction {
        machine.submit(request(name), id: Machine.RequestID(UInt64(waiter ?? 1000)), waiter: waiter)
    }

    /// The names in the next batch, or `nil` when the thread would not write.
    func batch(_ machine: inout Machine) -> [String]? {
        var batch: [ConnectionRequest] = []
        guard case .write = machine.nextBatch(into: &batch) else { return nil }
        return batch.map(\.name)
    }

    /// Answers every request in flight, in order: the waiters resumed.
    func answerAll(_ machine: inout Machine) -> [Int?] {
        var resumed: [Int?] = []
        while machine.hasRequestsInFlight { resumed.append(machine.replyArrived()) }
        return resumed
    }

    @Test func theFirstRequestStartsTheThreadAndLaterOnesWakeItOnceWhenItWaits() {
        var machine = machine()
        guard case .queuedStartingThread = submit(&machine, 1) else {
            Issue.record("the first request did not start the thread")
            return
        }
        #expect(machine.status == .connecting)
        guard case .queued(wakeThread: false) = submit(&machine, 2) else {
            Issue.record("a request while connecting was not queued quietly")
            return
        }
        let connected1 = machine.connected()
        #expect(connected1)
        #expect(batch(&machine)?.count == 2)
        #expect(answerAll(&machine) == [1, 2])
        #expect(batch(&machine) == nil, "an empty queue makes the thread wait")
        guard case .queued(wakeThread: true) = submit(&machine, 3) else {
            Issue.record("a request for a waiting thread did not wake it")
            return
        }
        guard case .queued(wakeThread: false) = submit(&machine, 4) else {
            Issue.record("a second request woke the thread a second time")
            return
        }
        #expect(batch(&machine)?.count == 2)
        #expect(answerAll(&machine) == [3, 4])
    }

    @Test func batchesStopAtThePipelineDepthAndRepliesResumeTheirOwnersInOrder() {
        var machine = machine(depth: 2)
        for waiter in 1...5 { submit(&machine, waiter, name: "C\(waiter)") }
        let connected2 = machine.connected()
        #expect(connected2)
        #expect(machine.outstanding == 5)
        #expect(batch(&machine) == ["C1", "C2"])
        #expect(machine.outstanding == 5, "in flight still counts")
        #expect(answerAll(&machine) == [1, 2])
        #expect(batch(&machine) == ["C3", "C4"])
        #expect(answerAll(&machine) == [3, 4])
        #expect(batch(&machine) == ["C5"])
        #expect(answerAll(&machine) == [5])
        #expect(machine.outstanding == 0)
    }

    @Test func aFailedConnectFailsWhatWasQueuedAndBacksOffLongerEachTime() {
        var machine = machine()
        submit(&machine, 1)
        var ceilings: [Duration] = []
        for attempt in 0..<8 {
            let (failed, delay) = machine.connectFailed(noServer)
            #expect(failed.map(\.waiter) == (attempt == 0 ? [1] : []))
            #expect(failed.map(\.name) == (attempt == 0 ? ["GET"] : []))
            #expect(machine.status == .backingOff)
            #expect(machine.lastError?.message == "connection refused")
            ceilings.append(delay)
            let retrying3 = machine.backoffEnded()
            #expect(retrying3)
            #expect(machine.status == .connecting)
        }
        // Half jitter: attempt n waits between half and all of min(50 ms * 2^n, 2 s).
        for (attempt, delay) in ceilings.enumerated() {
            let ceiling = min(Duration.milliseconds(50) * (1 << attempt), .seconds(2))
            #expect(delay >= ceiling / 2 && delay <= ceiling, "attempt \(attempt): \(delay)")
        }
        // A success resets the backoff.
        let connected4 = machine.connected()
        #expect(connected4)
        #expect(machine.failedAttempts == 0 && machine.lastError == nil)
        let (_, first) = machine.connectFailed(noServer)
        #expect(first <= .milliseconds(50))
    }

    @Test func whileBackingOffRequestsFailAtOnceWithTheReasonAndAreNotKept() {
        var machine = machine()
        submit(&machine, 1)
        _ = machine.connectFailed(noServer)
        guard case .fail(let error) = submit(&machine, 2) else {
            Issue.record("a request was queued behind a dead connection")
            return
        }
        #expect(error.code == .connectionFailed)
        #expect(error.message.hasSuffix(": connection refused"), "the reason of the last failed connect")
        #expect(machine.outstanding == 0, "a refused waiter stays with its caller")
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
        let retrying5 = machine.backoffEnded()
        #expect(retrying5)
        #expect(machine.keepsBackingOff(now: 0, until: 1_000_000_000), "retryNow is spent by one attempt")
    }

    @Test func aLostConnectionFailsOnlyWhatWasInFlightAndTheQueueGoesToTheNextOne() {
        var machine = machine(depth: 2)
        for waiter in 1...3 { submit(&machine, waiter) }
        let connected6 = machine.connected()
        #expect(connected6)
        #expect(batch(&machine)?.count == 2)
        let resumed7 = machine.replyArrived()
        #expect(resumed7 == 1)
        let failed = machine.connectionLost()
        #expect(failed.map(\.waiter) == [2], "the answered one is not failed again; the queued one waits")
        #expect(machine.status == .connecting)
        let resumed8 = machine.replyArrived()
        #expect(resumed8 == nil, "nothing is in flight any more")
        let connected9 = machine.connected()
        #expect(connected9)
        #expect(batch(&machine)?.count == 1)
        #expect(answerAll(&machine) == [3])
    }

    @Test func aCancelledQueuedRequestIsNeverWritten() {
        var machine = machine()
        for waiter in 1...3 { submit(&machine, waiter, name: "C\(waiter)") }
        let cancelled10 = machine.cancel(Machine.RequestID(2))
        #expect(cancelled10 == 2)
        let cancelled11 = machine.cancel(Machine.RequestID(2))
        #expect(cancelled11 == nil, "a waiter comes back once")
        let connected12 = machine.connected()
        #expect(connected12)
        #expect(batch(&machine) == ["C1", "C3"])
        #expect(answerAll(&machine) == [1, 3])
    }

    @Test func aCancelledRequestInFlightKeepsItsPlaceSoTheNextReplyGoesToTheRightCaller() {
        var machine = machine()
        for waiter in 1...3 { submit(&machine, waiter) }
        let connected13 = machine.connected()
        #expect(connected13)
        #expect(batch(&machine)?.count == 3)
        let cancelled14 = machine.cancel(Machine.RequestID(2))
        #expect(cancelled14 == 2)
        #expect(answerAll(&machine) == [1, nil, 3], "the cancelled one's reply is read and dropped")
        let cancelled15 = machine.cancel(Machine.RequestID(3))
        #expect(cancelled15 == nil, "answered already")
    }

    @Test func aDetachedRequestIsWrittenAndItsReplyOwedToNobody() {
        var machine = machine()
        submit(&machine, nil, name: "PEXPIRE")
        submit(&machine, 1)
        let connected16 = machine.connected()
        #expect(connected16)
        #expect(batch(&machine) == ["PEXPIRE", "GET"])
        #expect(answerAll(&machine) == [nil, 1])
    }

    @Test func shutdownHandsBackEveryWaiterAtOnceAndEndsTheThread() {
        var machine = machine(depth: 1)
        for waiter in 1...3 { submit(&machine, waiter) }
        let connected17 = machine.connected()
        #expect(connected17)
        #expect(batch(&machine)?.count == 1)
        let action = machine.shutdown()
        #expect(action?.failed.map(\.waiter).sorted() == [1, 2, 3], "in flight and queued")
        #expect(action?.exitedWithoutThread == false)
        let closing18 = machine.shutdown()
        #expect(closing18 == nil, "a second shutdown does nothing")
        let resumed19 = machine.replyArrived()
        #expect(resumed19 == nil, "a late reply resumes nobody")
        let left20 = machine.threadExiting()
        #expect(left20.isEmpty)
        guard case .fail(let error) = submit(&machine, 4) else {
            Issue.record("a closed connection took a request")
            return
        }
        #expect(error.code == .closed)
        var unused: [ConnectionRequest] = []
        guard case .exit = machine.nextBatch(into: &unused) else {
            Issue.record("the thread was not told to exit")
            return
        }
        let connected21 = machine.connected()
        #expect(!connected21, "a connect that finishes after shutdown is not used")
        let retrying22 = machine.backoffEnded()
        #expect(!retrying22)
        // A worker that never started has no thread to report its exit.
        var idle = self.machine()
        let closing23 = idle.shutdown()
        #expect(closing23?.exitedWithoutThread == true)
    }

    @Test func aThreadTheSystemRefusedFailsTheQueueAndTheNextRequestTriesAgain() {
        var machine = machine()
        submit(&machine, 1)
        let refused24 = machine.threadDidNotStart()
        #expect(refused24.map(\.waiter) == [1])
        #expect(machine.status == .notStarted)
        #expect(machine.unavailableError.message.contains("refused to start a connection thread"))
        guard case .queuedStartingThread = submit(&machine, 2) else {
            Issue.record("the next request did not try to start the thread again")
            return
        }
        // Refused again, then closed: no thread ran, so the close must not wait for one to exit.
        _ = machine.threadDidNotStart()
        let closing25 = machine.shutdown()
        #expect(closing25?.exitedWithoutThread == true)
    }
}
