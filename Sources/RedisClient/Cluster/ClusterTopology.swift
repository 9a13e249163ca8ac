/// Which primary owns each hash slot: pure state, no I/O, driven by ``ClusterRouter`` with what the nodes answer.
///
/// - **A full table from `CLUSTER SLOTS`**, asked of any node that answers. A new table that moves any slot, or adds
///   or drops a primary, is a new *generation*. Whatever the caches built on the old one must be rebuilt.
/// - **`MOVED` patches one slot** at once, so the resend goes to the right node without waiting for a refresh. A
///   `MOVED` to a node the table does not know also asks for a refresh: the cluster changed more than one slot.
/// - **`ASK` changes nothing here.** It is a one-off redirection during a migration, not a new owner.
struct ClusterTopology: Sendable, Equatable {
    typealias Endpoint = RedisConfiguration.Endpoint

    /// Where to ask for the table when no primary is known (the configured seeds).
    let seeds: [Endpoint]
    /// The owner of each slot, as an index into ``primaries``, or -1.
    private(set) var owners: [Int16]
    /// The primaries that own slots.
    private(set) var primaries: [Endpoint]
    /// Bumped whenever a slot changes owner or the set of primaries changes.
    private(set) var generation: UInt64 = 0

    init(seeds: [Endpoint]) {
        precondition(!seeds.isEmpty, "a cluster needs at least one seed node")
        self.seeds = seeds
        self.owners = Array(repeating: -1, count: HashSlot.count)
        self.primaries = []
    }

    /// The primary that owns `slot`, if known.
    func owner(of slot: Int) -> Endpoint? {
        let index = owners[slot]
        return index >= 0 ? primaries[Int(index)] : nil
    }

    /// Whether every slot has an owner.
    var coversEverySlot: Bool { !owners.contains(-1) }

    /// Nodes to ask for a table, the primaries first, then the seeds.
    var nodesToAsk: [Endpoint] {
        var nodes = primaries
        for seed in seeds where !nodes.contains(seed) { nodes.append(seed) }
        return nodes
    }

    /// Replaces the table with one read from `CLUSTER SLOTS`. Returns whether anything changed (a new generation).
    mutating func apply(_ ranges: [(slots: ClosedRange<Int>, primary: Endpoint)]) -> Bool {
        var primaries: [Endpoint] = []
        var owners = [Int16](repeating: -1, count: HashSlot.count)
        for (slots, primary) in ranges {
            guard slots.lowerBound >= 0, slots.upperBound < HashSlot.count else { continue }
            let index: Int
            if let known = primaries.firstIndex(of: primary) {
                index = known
            } else {
                index = primaries.count
                primaries.append(primary)
            }
            for slot in slots { owners[slot] = Int16(index) }
        }
        // Compare by owner, not by index: the same table listed in another order is not a change.
        let changed =
            Set(primaries) != Set(self.primaries)
            || (0..<HashSlot.count).contains { owner(of: $0) != (owners[$0] >= 0 ? primaries[Int(owners[$0])] : nil) }
        self.primaries = primaries
        self.owners = owners
        if changed { generation &+= 1 }
        return changed
    }

    /// What a `MOVED` did to the table.
    enum MovedOutcome: Equatable {
        /// The slot already belonged there (another request patched it first).
        case unchanged
        /// The slot now belongs to a known primary.
        case patched
        /// The slot moved to a node the table did not know: patched, and the whole table should be read again.
        case patchedToNewNode
    }

    /// Applies `MOVED <slot> <host:port>`.
    mutating func moved(slot: Int, to node: Endpoint) -> MovedOutcome {
        guard (0..<HashSlot.count).contains(slot) else { return .unchanged }
        if owner(of: slot) == node { return .unchanged }
        generation &+= 1
        if let index = primaries.firstIndex(of: node) {
            owners[slot] = Int16(index)
            return .patched
        }
        primaries.append(node)
        owners[slot] = Int16(primaries.count - 1)
        return .patchedToNewNode
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], replicas...], ...]`. An empty host
    /// means the node that answered.
    static func parseSlots(_ reply: RedisValue, answeredBy: Endpoint) -> [(slots: ClosedRange<Int>, primary: Endpoint)]?
    {
        guard let entries = reply.array else { return nil }
        var ranges: [(slots: ClosedRange<Int>, primary: Endpoint)] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let start = fields[0].int, let end = fields[1].int,
                start <= end, let node = fields[2].array, node.count >= 2, let host = node[0].string,
                let port = node[1].int
            else { return nil }
            let primary: Endpoint =
                if host.isEmpty, case .tcp(let answeringHost, _) = answeredBy {
                    .tcp(host: answeringHost, port: port)
                } else {
                    .tcp(host: host, port: port)
                }
            ranges.append((start...end, primary))
        }
        return ranges
    }
}

/// A redirection or a retryable refusal from a cluster node, parsed from an error reply.
enum ClusterRedirection: Equatable {
    /// `MOVED <slot> <host:port>`: the slot lives there now.
    case moved(slot: Int, node: RedisConfiguration.Endpoint)
    /// `ASK <slot> <host:port>`: this one command goes there, after `ASKING`.
    case ask(slot: Int, node: RedisConfiguration.Endpoint)
    /// `TRYAGAIN` (a multi-key command during a migration) or `CLUSTERDOWN`: nothing ran; try again shortly.
    case retryLater

    init?(_ reply: RedisValue) {
        guard case .error(let message) = reply else { return nil }
        if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
            self = .retryLater
            return
        }
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let node = RedisConfiguration.Endpoint.tcp(host: host, port: port)
        self = parts[0] == "MOVED" ? .moved(slot: slot, node: node) : .ask(slot: slot, node: node)
    }
}
