/// What this process believes about a Sentinel-monitored master: pure state, no I/O.
///
/// ``SentinelMonitor`` drives it with what the sentinels and the nodes answer, and acts on the changes it reports.
/// Every belief has a *generation*, bumped whenever the master this process writes to changes or is forgotten;
/// a connection made in an older generation must not be written to again.
///
/// The rules, each a lesson from other clients' bug trackers:
/// - **Discovery asks the sentinels in turn**, the last one that gave a usable answer first. A sentinel that is down
///   moves to the back. So does one whose answer turned out not to be a master (it lied, or lags behind a failover).
/// - **The first `+switch-master` from any sentinel wins**, at once: waiting for a poll or an error is how writes
///   keep going to a demoted master that keeps its connections (redis-py#435, jedis#1194, spring-data-redis#2668).
/// - **A poll is only a backstop** for a lost announcement, and it must not undo a switch that the other sentinels
///   have not caught up with yet. So it moves only to a strictly newer configuration epoch. An announcement carries
///   no epoch, so the one it brings counts as one past the newest seen; every failover raises the epoch by at least
///   one, so this never overstates it.
/// - **A node that says it is not the master** (`ROLE`, a `-READONLY` reply) is forgotten, which is a new generation.
///   Only a report about the current master counts; a late report about an old one changes nothing.
struct SentinelState: Sendable, Equatable {
    typealias Endpoint = RedisConfiguration.Endpoint

    /// The master's name in the sentinels' configuration.
    let masterName: String
    /// The sentinels in the order discovery asks them.
    private(set) var sentinels: [Endpoint]
    /// The master connections go to, or `nil` when it must be discovered.
    private(set) var master: Endpoint?
    /// The newest configuration epoch seen for the master, when known.
    private(set) var epoch: Int?
    /// Bumped whenever ``master`` changes, including to `nil`.
    private(set) var generation: UInt64 = 0
    /// The sentinel that named the current master during discovery, to blame if the node denies it.
    private var namedBy: Endpoint?

    /// A sentinel's answer to `SENTINEL MASTER <name>` during a poll.
    struct PollAnswer: Sendable, Equatable {
        var sentinel: Endpoint
        var master: Endpoint
        var epoch: Int
    }

    init(masterName: String, sentinels: [Endpoint]) {
        precondition(!sentinels.isEmpty, "Sentinel needs at least one sentinel address")
        self.masterName = masterName
        self.sentinels = sentinels
    }

    /// A sentinel answered `SENTINEL get-master-addr-by-name`. Returns whether the master changed.
    mutating func discovered(_ address: Endpoint, from sentinel: Endpoint) -> Bool {
        promote(sentinel)
        namedBy = sentinel
        return move(to: address)
    }

    /// A sentinel could not be reached, or did not know the master: ask it last next time.
    mutating func sentinelFailed(_ sentinel: Endpoint) {
        guard let index = sentinels.firstIndex(of: sentinel), sentinels.count > 1 else { return }
        sentinels.append(sentinels.remove(at: index))
    }

    /// A sentinel published `+switch-master <name> <old ip> <old port> <new ip> <new port>`. Returns whether the
    /// master changed.
    mutating func switchAnnounced(masterName name: String, to address: Endpoint) -> Bool {
        guard name == masterName, address != master else { return false }
        epoch = (epoch ?? 0) + 1
        namedBy = nil
        return move(to: address)
    }

    /// The answers of one poll. Moves only to an epoch newer than any seen (the newest answer wins; on equal epochs,
    /// the address most sentinels give). Returns whether the master changed.
    mutating func polled(_ answers: [PollAnswer]) -> Bool {
        guard let newest = answers.map(\.epoch).max() else { return false }
        let atNewest = answers.filter { $0.epoch == newest }
        var votes: [Endpoint: Int] = [:]
        for answer in atNewest { votes[answer.master, default: 0] += 1 }
        guard let winner = votes.max(by: { $0.value < $1.value || ($0.value == $1.value && "\($0.key)" > "\($1.key)") })
        else { return false }
        if let known = epoch, newest <= known {
            // Nothing newer. The first poll after discovery only learns the epoch of the master it already uses.
            return false
        }
        if epoch == nil, winner.key == master {
            epoch = newest
            return false
        }
        epoch = newest
        namedBy = nil
        return move(to: winner.key)
    }

    /// A node answered `ROLE` with something other than `master`, or a command with `-READONLY`. Returns whether the
    /// master was forgotten (only when `address` is the current master).
    mutating func nodeIsNotMaster(_ address: Endpoint) -> Bool {
        guard address == master else { return false }
        if let namedBy { sentinelFailed(namedBy) }
        namedBy = nil
        return move(to: nil)
    }

    private mutating func move(to address: Endpoint?) -> Bool {
        guard address != master else { return false }
        master = address
        generation &+= 1
        return true
    }

    private mutating func promote(_ sentinel: Endpoint) {
        guard let index = sentinels.firstIndex(of: sentinel), index > 0 else { return }
        sentinels.insert(sentinels.remove(at: index), at: 0)
    }
}
