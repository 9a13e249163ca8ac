import Synchronization

/// The cluster side of ``RedisClient``: a slot table, one pool per primary, and the redirections.
///
/// - **Routing.** Each request is cut into units (a command, or `MULTI` ... `EXEC` with everything between), and
///   each unit goes to the owner of its keys' slot. A request whose units all share a slot, which is every request
///   the session store makes, goes out unchanged in one write. A pipeline spanning slots is split per node, and the
///   replies come back in the caller's order.
/// - **Redirections.** They are resent, because each of these replies proves that nothing ran:
///   - `MOVED`: patch the slot, then resend;
///   - `ASK`: resend to the importing node, with `ASKING` before *each* command, or once before a transaction's
///     `MULTI`;
///   - `TRYAGAIN` and `CLUSTERDOWN`: back off, then resend.
///
///   Each request is resent at most ``maximumRedirections`` times.
/// - **Never resent after a connection error.** The command may have run, so the caller gets the error. The table is
///   read again in the background, because a lost node usually means a failover. The exception is a request that
///   found no connection to its node at all (`connectionFailed`: nothing was written): the table is read at once,
///   and the request goes to the new owner if there is one.
/// - **The table is read** (`CLUSTER SLOTS`) on first use, after a `MOVED` to an unknown node, after a connection
///   error, and every ``RedisConfiguration/Cluster/refreshInterval``. Observers hear of every new generation, so the
///   caches can treat it as a gap. The reads run in child tasks of ``run()``; a client nobody runs reads the table
///   in the task of the next request that finds a read due, so the library starts no task of its own. One read runs
///   at a time, and callers that want one meanwhile wait for it.
/// - **Pools are never retired while the client lives.** Closing a former primary's pool would fail the requests
///   queued on it, and a request that failed with `closed` may or may not have run. A demoted node answers `MOVED`,
///   which is resent, and a dead node's pool backs off quietly: one idle connection per former primary is the price.
final class ClusterRouter: RequestExecutor {
    typealias Endpoint = RedisConfiguration.Endpoint

    /// How often one request may be redirected or retried before its last reply is returned as it is.
    static let maximumRedirections = 5

    let configuration: RedisConfiguration
    /// The table, shared with every client of this process for the same cluster.
    private let shared: SharedClusterTable
    private let pools = Mutex<[Endpoint: [ConnectionWorker]]>([:])
    private let counters: ClientCounters
    private let namePrefix: String
    private let redirects: TrackingRedirects?
    /// A table read in progress, and who waits for it.
    private let reading = Mutex<(running: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    /// A read was asked for (a lost node, a `MOVED` to a new one) and has not started yet.
    private let readWanted = Atomic<Bool>(false)
    /// When the table was last read, for the periodic read of a client nobody runs.
    private let lastRead = Atomic<UInt64>(0)
    /// Wakes ``run()`` for a wanted read; `nil` while nothing runs the router.
    private let wakeRun = Mutex<AsyncStream<Void>.Continuation?>(nil)
    /// Whether ``run()`` runs, read on every request without a lock.
    private let running = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)
    /// Redirections followed so far (`MOVED`, `ASK`, `TRYAGAIN`): a resent read is not the read that was sent, so a
    /// cache that asked Redis to track a read compares this before keeping its result.
    let redirections = Atomic<UInt64>(0)

    init(
        configuration: RedisConfiguration, cluster: RedisConfiguration.Cluster, counters: ClientCounters,
        namePrefix: String, redirects: TrackingRedirects? = nil
    ) {
        self.redirects = redirects
        self.configuration = configuration
        self.shared = SharedClusterTable.table(for: cluster)
        self.counters = counters
        self.namePrefix = namePrefix
    }

    // MARK: Lifecycle

    /// Reads the table now and keeps it fresh until the calling task is cancelled: every
    /// ``RedisConfiguration/Cluster/refreshInterval``, and at once when a request asks for a read.
    func run() async {
        let (requests, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        wakeRun.withLock { $0 = continuation }
        running.store(true, ordering: .releasing)
        defer {
            running.store(false, ordering: .releasing)
            wakeRun.withLock { $0 = nil }
            continuation.finish()
        }
        try? await refreshTopology()
        let interval = configuration.cluster?.refreshInterval ?? .seconds(5)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    guard !Task.isCancelled else { return }
                    try? await self.refreshTopology()
                }
            }
            group.addTask {
                for await _ in requests where self.readWanted.load(ordering: .relaxed) {
                    try? await self.refreshTopology()
                }
            }
            await waitForCancellation()
            group.cancelAll()
        }
    }

    func close() async {
        for worker in shutdownWorkers() { await worker.waitUntilExited() }
    }

    func shutdown() { shutdownWorkers() }

    /// Stops every node's connections without waiting for their threads; returns them.
    @discardableResult
    private func shutdownWorkers() -> [ConnectionWorker] {
        closed.store(true, ordering: .relaxed)
        let all = pools.withLock { pools in
            defer { pools = [:] }
            return pools.values.flatMap { $0 }
        }
        for worker in all { worker.shutdown() }
        return all
    }

    /// Connected connections across every node's pool.
    var connectedCount: Int {
        pools.withLock { $0.values.reduce(0) { $0 + $1.reduce(0) { $0 + ($1.status == .connected ? 1 : 0) } } }
    }

    /// The primaries and the table's generation, reading the table first when it is empty.
    func primaries() async throws(RedisError) -> (nodes: [Endpoint], generation: UInt64) {
        if shared.table.withLock({ $0.primaries.isEmpty }) { try await refreshTopology() }
        return shared.table.withLock { ($0.primaries, $0.generation) }
    }

    /// The primaries in the table now, without reading it again.
    var currentPrimaries: Set<Endpoint> { shared.table.withLock { Set($0.primaries) } }

    /// Calls `handler` with the new generation whenever the table changes.
    func addObserver(_ handler: @escaping @Sendable (UInt64) -> Void) -> Int { shared.addObserver(handler) }

    func removeObserver(_ id: Int) { shared.removeObserver(id) }

    // MARK: Requests

    func execute(_ request: ConnectionRequest) async throws(RedisError) -> RedisValue {
        try await execute(payload: request.payload, replyCount: request.replyCount, name: request.name)
    }

    func execute(payload: [UInt8], replyCount: Int, name: String) async throws(RedisError) -> RedisValue {
        if shared.table.withLock({ $0.primaries.isEmpty }) {
            try await refreshTopology()
        } else if readIsDueInThisTask {
            try? await refreshTopology()
        }
        // The common case, a single-key command or a pipeline on one key, without building the units.
        if let slot = ClusterCommands.singleKeySlot(payload) {
            return try await send(payload, commands: nil, replyCount: replyCount, slot: slot, name: name)
        }
        let parsed = try ClusterCommands(payload: payload)
        let slots = Set(parsed.units.compactMap(\.slot))
        if slots.count <= 1 {
            return try await send(payload, commands: parsed, replyCount: replyCount, slot: slots.first, name: name)
        }
        return try await split(payload, parsed: parsed, replyCount: replyCount, name: name)
    }

    /// A pipeline over several slots: one request per unit, sent concurrently, replies in the caller's order.
    private func split(_ payload: [UInt8], parsed: ClusterCommands, replyCount: Int, name: String)
        async throws(RedisError)
        -> RedisValue
    {
        // One request per slot, its units in the caller's order (a GET after a SET of the same key must see it);
        // different slots are different keys, so their requests run concurrently.
        var groups: [Int?: [ClusterCommands.Unit]] = [:]
        var order: [Int?] = []
        for unit in parsed.units {
            if groups[unit.slot] == nil { order.append(unit.slot) }
            groups[unit.slot, default: []].append(unit)
        }
        var replies = [RedisValue](repeating: .null, count: parsed.commands.count)
        var requests: [(indices: [Int], bytes: [UInt8], commands: ClusterCommands, slot: Int?)] = []
        for slot in order {
            let indices = (groups[slot] ?? []).flatMap { Array($0.commands) }
            var bytes: [UInt8] = []
            for index in indices { bytes += payload[parsed.commands[index].range] }
            requests.append((indices, bytes, try ClusterCommands(payload: bytes), slot))
        }
        let failure = await withTaskGroup(of: Result<([Int], [RedisValue]), RedisError>.self) { group in
            for request in requests {
                group.addTask {
                    do throws(RedisError) {
                        let reply = try await self.send(
                            request.bytes, commands: request.commands, replyCount: request.indices.count,
                            slot: request.slot, name: name)
                        return .success((request.indices, request.indices.count == 1 ? [reply] : reply.array ?? []))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var failure: RedisError?
            for await result in group {
                switch result {
                case .success(let (indices, values)):
                    for (index, value) in zip(indices, values) { replies[index] = value }
                case .failure(let error):
                    // The pipeline has failed: the other nodes' parts are not waited for.
                    if failure == nil { group.cancelAll() }
                    if failure == nil { failure = error }
                }
            }
            return failure
        }
        if let failure { throw failure }
        return replyCount == 1 ? replies[0] : .array(replies)
    }

    /// One request for one slot (or none), following redirections.
    private func send(
        _ payload: [UInt8], commands known: ClusterCommands?, replyCount: Int, slot: Int?, name: String,
        attempt startingAttempt: Int = 0
    ) async throws(RedisError) -> RedisValue {
        var askTarget: Endpoint?
        var attempt = startingAttempt
        while true {
            let node: Endpoint
            if let askTarget {
                node = askTarget
            } else if let owner = shared.table.withLock({ state in
                slot.flatMap { state.owner(of: $0) } ?? state.primaries.first
            }) {
                node = owner
            } else {
                throw RedisError(
                    .connectionFailed, "no primary of the cluster owns slot \(slot.map(String.init) ?? "-")",
                    context: configuration.serverDescription)
            }
            let reply: RedisValue
            do throws(RedisError) {
                if askTarget != nil {
                    // Rare (a migration): the commands are cut only now.
                    let commands = try commands(known, payload)
                    reply = try await submitAsking(
                        payload, commands: commands, replyCount: replyCount,
                        transaction: commands.commands.first?.name == "MULTI", to: node, name: name)
                } else {
                    reply = try await submit(payload, replyCount: replyCount, to: node, name: name)
                }
            } catch where error.code == .connectionFailed && askTarget == nil && attempt < Self.maximumRedirections {
                // Nothing was written: there is no connection to that node (it refused, or the pool is backing off
                // after it died). After a failover an instance that had no traffic for this shard learns of it only
                // now, so read the table (at most every 100 ms) and resend if it names another owner.
                if MonotonicClock.coarse.now() &- lastRead.load(ordering: .relaxed) > 100_000_000 {
                    try? await refreshTopology()
                }
                let owner = shared.table.withLock { state in
                    slot.flatMap { state.owner(of: $0) } ?? state.primaries.first
                }
                guard let owner, owner != node else {
                    scheduleRefresh()
                    throw error
                }
                attempt += 1
                continue
            } catch where [.connectionFailed, .connectionClosed, .timeout].contains(error.code) {
                // It may have run: never resent. A lost node is usually a failover; read the table again.
                scheduleRefresh()
                throw error
            }
            askTarget = nil
            guard let redirection = Self.redirection(in: reply, replyCount: replyCount),
                attempt < Self.maximumRedirections
            else { return reply }
            redirections.add(1, ordering: .releasing)
            attempt += 1
            if replyCount > 1, case .array(let replies) = reply {
                let commands = try commands(known, payload)
                if commands.commands.first?.name != "MULTI" {
                    // A pipeline is not atomic: during a migration some of its commands ran and some were
                    // redirected. Only the redirected ones are resent, alone and in order; the others must not run twice.
                    return .array(
                        try await resendRedirected(
                            replies, of: payload, commands: commands, name: name, attempt: attempt))
                }
                // A transaction that was redirected did not run at all (EXECABORT): the whole of it is resent.
            }
            switch redirection {
            case .moved(let movedSlot, let target):
                let outcome = shared.table.withLock { $0.moved(slot: movedSlot, to: target) }
                if outcome != .unchanged { notify() }
                if outcome == .patchedToNewNode { scheduleRefresh() }
            case .ask(_, let target):
                askTarget = target
            case .retryLater:
                // CLUSTERDOWN lasts about as long as a failover (under a second here with a 1 s node timeout):
                // 50, 100, 200, 400 ms covers it without hammering the nodes.
                do {
                    try await Task.sleep(for: .milliseconds(50 << (attempt - 1)))
                } catch {
                    throw RedisError.cancelled(name)
                }
                if attempt >= 2 { scheduleRefresh() }
            }
        }
    }

    /// The commands of `payload`: as already cut, else cut now.
    private func commands(_ known: ClusterCommands?, _ payload: [UInt8]) throws(RedisError) -> ClusterCommands {
        if let known { return known }
        return try ClusterCommands(payload: payload)
    }

    /// A pipeline's replies with each redirected command sent again on its own (following its own redirections).
    private func resendRedirected(
        _ replies: [RedisValue], of payload: [UInt8], commands: ClusterCommands, name: String, attempt: Int
    ) async throws(RedisError) -> [RedisValue] {
        var result = replies
        for (index, reply) in replies.enumerated() where index < commands.commands.count {
            guard let redirection = ClusterRedirection(reply) else { continue }
            if case .moved(let movedSlot, let target) = redirection {
                let outcome = shared.table.withLock { $0.moved(slot: movedSlot, to: target) }
                if outcome != .unchanged { notify() }
                if outcome == .patchedToNewNode { scheduleRefresh() }
            }
            let command = commands.commands[index]
            result[index] = try await send(
                Array(payload[command.range]), commands: nil, replyCount: 1, slot: command.slot, name: name,
                attempt: attempt)
        }
        return result
    }

    /// The first redirection in a reply: the reply itself, one of a pipeline's replies, or a command queued in a
    /// transaction (whose `EXEC` then answers `EXECABORT`).
    static func redirection(in reply: RedisValue, replyCount: Int) -> ClusterRedirection? {
        if replyCount == 1 { return ClusterRedirection(reply) }
        guard case .array(let replies) = reply else { return ClusterRedirection(reply) }
        for value in replies {
            if let redirection = ClusterRedirection(value) { return redirection }
        }
        return nil
    }

    /// `ASKING` covers the next command only (or, before `MULTI`, the whole transaction): one before each command of
    /// a pipeline, and the `ASKING` replies dropped.
    private func submitAsking(
        _ payload: [UInt8], commands: ClusterCommands, replyCount: Int, transaction: Bool, to node: Endpoint,
        name: String
    ) async throws(RedisError) -> RedisValue {
        let asking = RedisCommand("ASKING").encoded
        var prefixed: [UInt8] = []
        prefixed.reserveCapacity(payload.count + asking.count * commands.commands.count)
        if transaction {
            prefixed = asking + payload
            let reply = try await submit(prefixed, replyCount: replyCount + 1, to: node, name: name)
            return .array(Array((reply.array ?? []).dropFirst()))
        }
        for command in commands.commands {
            prefixed += asking
            prefixed += payload[command.range]
        }
        let reply = try await submit(prefixed, replyCount: replyCount * 2, to: node, name: name)
        let values = reply.array ?? []
        let kept = stride(from: 1, to: values.count, by: 2).map { values[$0] }
        return replyCount == 1 ? (kept.first ?? .null) : .array(kept)
    }

    /// Hands the bytes to a connection of the node's pool and waits for the replies.
    private func submit(_ payload: [UInt8], replyCount: Int, to node: Endpoint, name: String) async throws(RedisError)
        -> RedisValue
    {
        let worker = try pool(for: node)
        counters.requests.add(1, ordering: .relaxed)
        counters.commands.add(replyCount, ordering: .relaxed)
        return try await worker.perform(ConnectionRequest(payload: payload, replyCount: replyCount, name: name))
    }

    /// A best-effort command nobody waits for, to the owner of its slot; dropped when that is not known.
    func submitDetached(_ command: RedisCommand) {
        guard let parsed = try? ClusterCommands(payload: command.encoded),
            let node = shared.table.withLock({ state in parsed.units.first?.slot.flatMap { state.owner(of: $0) } }),
            let worker = try? pool(for: node)
        else { return }
        counters.requests.add(1, ordering: .relaxed)
        counters.commands.add(1, ordering: .relaxed)
        worker.submitDetached(ConnectionRequest(command))
    }

    private func pool(for node: Endpoint) throws(RedisError) -> ConnectionWorker {
        let workers = pools.withLock { pools in
            if let existing = pools[node] { return existing }
            var nodeConfiguration = configuration.aimed(at: node)
            // A pool per primary means more connection threads than cores: spinning for replies would take the
            // cores the nodes need (measured: 1.27x against redis-benchmark --cluster with polling, 1.40x without).
            nodeConfiguration.busyPollWindow = .zero
            let created = (0..<max(1, configuration.poolSize)).map { index in
                ConnectionWorker(
                    configuration: nodeConfiguration, resolver: FixedNode(),
                    name: "\(namePrefix)\(pools.count).\(index)",
                    counters: counters, redirects: redirects)
            }
            pools[node] = created
            return created
        }
        return try ConnectionWorker.pick(from: workers, configuration: configuration)
    }

    // MARK: Topology

    /// Reads `CLUSTER SLOTS` from the first node that answers. One read at a time: a caller that arrives while one
    /// runs waits for it instead of starting another.
    func refreshTopology() async throws(RedisError) {
        let leads = reading.withLock { state in
            if state.running { return false }
            state.running = true
            return true
        }
        if leads {
            readWanted.store(false, ordering: .relaxed)
            await readTable()
            lastRead.store(MonotonicClock.coarse.now(), ordering: .relaxed)
            let waiters = reading.withLock { state in
                defer { state = (false, []) }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        } else {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let waiting = reading.withLock { state in
                    if state.running { state.waiters.append(waiter) }
                    return state.running
                }
                if !waiting { waiter.resume() }
            }
        }
        if shared.table.withLock({ $0.primaries.isEmpty }) {
            throw RedisError(
                .connectionFailed, "no node of the cluster answered CLUSTER SLOTS",
                context: configuration.serverDescription)
        }
    }

    /// Reads the table when a read was asked for or the periodic one is due, and nothing runs the router: for a
    /// caller with a clock of its own (a cluster subscription's pings).
    func refreshIfDue() async {
        if readIsDueInThisTask { try? await refreshTopology() }
    }

    /// Asks for a read of the table: ``run()`` does it at once; without it, the next request does.
    private func scheduleRefresh() {
        guard !closed.load(ordering: .relaxed) else { return }
        readWanted.store(true, ordering: .relaxed)
        _ = wakeRun.withLock { $0?.yield() }
    }

    /// Whether the current request must read the table first: nothing runs the router, and a read was asked for or
    /// the periodic one is due.
    private var readIsDueInThisTask: Bool {
        // On every request: two relaxed loads and the kernel's coarse clock, no lock.
        guard !running.load(ordering: .relaxed) else { return false }
        if readWanted.load(ordering: .relaxed) { return true }
        return MonotonicClock.coarse.now() &- lastRead.load(ordering: .relaxed) > refreshNanoseconds
    }

    private var refreshNanoseconds: UInt64 { (configuration.cluster?.refreshInterval ?? .seconds(5)).nanoseconds }

    private func readTable() async {
        for node in shared.table.withLock({ $0.nodesToAsk }) {
            guard
                let reply = try? await submit(
                    RedisCommand("CLUSTER", "SLOTS").encoded, replyCount: 1, to: node, name: "CLUSTER"),
                let ranges = ClusterTopology.parseSlots(reply, answeredBy: node), !ranges.isEmpty
            else { continue }
            let changed = shared.table.withLock { $0.apply(ranges) }
            if changed { notify() }
            return
        }
    }

    private func notify() { shared.notify() }
}
