package import RedisClient
import Synchronization

/// What every cache of the package shares: a table split into shards that each have their own lock, a serving flag
/// and a generation, counters, the clock, and the rule that ``claimRun(_:)`` happens once.
///
/// Every request of an instance reads its caches, so a lookup must not serialise the cores. A lookup locks one shard
/// (chosen by the key) and counts its hit or miss inside that shard, so lookups of different keys on different cores
/// touch different cache lines. The shards sit in one allocation, each on its own 128-byte lines.
///
/// The exactness rules hold across shards because the serving flag and the generation are one atomic word, read
/// under the shard's lock:
/// - A clear first moves the generation on, then empties the shards one by one. A store that started before the
///   clear (with the old generation) either lands in a shard before the clear reaches it, and is emptied with it, or
///   finds the new generation and stores nothing.
/// - Nothing is served or stored while the flag says the cache is not serving.
package final class CacheCore<Entry: Sendable>: @unchecked Sendable {
    /// One shard's table and counters, guarded by the shard's lock.
    package struct Shard: Sendable {
        package var table: LRUTable<Entry>
        package var hits = 0
        package var misses = 0
        /// For entries that mark work in flight (a load that has not returned yet).
        package var nextToken: UInt64 = 0
    }

    /// The serving flag and the generation of the cache, as one value.
    package struct Phase: Sendable, Hashable {
        package let isServing: Bool
        /// Bumped by every clear, and by whatever must keep an older read out of the cache.
        package let generation: UInt64

        init(_ word: UInt64) {
            isServing = word & 1 == 1
            generation = word >> 1
        }
    }

    /// Reads the time for ages and expiry.
    package let clock: MonotonicClock
    /// Entries older than this are not served.
    package let maximumAgeNanoseconds: UInt64
    /// How many shards: one for a small cache, so its least-recently-used order is exact.
    package let shardCount: Int

    private let phaseWord = Atomic<UInt64>(0)
    private let running = Atomic<Bool>(false)
    private let shards: UnsafeMutableRawPointer
    private let shardStride: Int
    private let shardMask: Int

    /// A cache of `capacity` entries: 16 shards of a sixteenth each from 1,024 entries on, else one shard.
    package init(capacity: Int, maximumAge: Duration, clock: MonotonicClock) {
        precondition(capacity > 0, "a cache holds at least one entry")
        self.clock = clock
        self.maximumAgeNanoseconds = maximumAge.nanoseconds
        let count = capacity >= 1024 ? 16 : 1
        self.shardCount = count
        self.shardMask = count - 1
        let size = MemoryLayout<Mutex<Shard>>.size
        self.shardStride = (size + 127) / 128 * 128
        self.shards = UnsafeMutableRawPointer.allocate(byteCount: shardStride * count, alignment: 128)
        let perShard = (capacity + count - 1) / count
        for index in 0..<count {
            (shards + index * shardStride).bindMemory(to: Mutex<Shard>.self, capacity: 1)
                .initialize(to: Mutex(Shard(table: LRUTable(capacity: perShard))))
        }
    }

    deinit {
        for index in 0..<shardCount { shard(index).deinitialize(count: 1) }
        shards.deallocate()
    }

    /// The serving flag and the generation now.
    package var phase: Phase { Phase(phaseWord.load(ordering: .acquiring)) }

    /// Runs `body` on the shard of `key` under its lock, with the phase as it is inside the lock.
    @inline(__always)
    package func withShard<Result>(for key: String, _ body: (inout Shard, Phase) -> Result) -> Result {
        shard(Self.shardIndex(of: key, mask: shardMask)).pointee.withLock { shard in
            body(&shard, Phase(phaseWord.load(ordering: .acquiring)))
        }
    }

    /// Runs `body` on every shard in turn, each under its lock.
    package func forEachShard(_ body: (inout Shard) -> Void) {
        for index in 0..<shardCount { shard(index).pointee.withLock { body(&$0) } }
    }

    /// Starts (or stops) serving, moves the generation on and empties every shard.
    package func reset(serving: Bool) {
        var word = phaseWord.load(ordering: .relaxed)
        while true {
            let next = ((word >> 1) &+ 1) << 1 | (serving ? 1 : 0)
            let (exchanged, original) = phaseWord.compareExchange(
                expected: word, desired: next, ordering: .acquiringAndReleasing)
            if exchanged { break }
            word = original
        }
        forEachShard { $0.table.removeAll() }
    }

    /// Empties every shard and moves the generation on, keeping the serving flag.
    package func clear() {
        reset(serving: phase.isServing)
    }

    /// Moves the generation on without emptying anything, so reads that started before now store nothing; returns
    /// the new generation. Call it under the lock of the shard whose entry the caller just dropped.
    package func advanceGeneration() -> UInt64 {
        phaseWord.wrappingAdd(2, ordering: .acquiringAndReleasing).newValue >> 1
    }

    /// Entries held, hits and misses, summed over the shards.
    package var totals: (count: Int, hits: Int, misses: Int) {
        var totals = (count: 0, hits: 0, misses: 0)
        forEachShard { shard in
            totals.count += shard.table.count
            totals.hits += shard.hits
            totals.misses += shard.misses
        }
        return totals
    }

    /// Whether an entry stored at `storedAt` is younger than the maximum age at `now`.
    @inline(__always)
    package func isFresh(storedAt: UInt64, now: UInt64) -> Bool {
        now &- storedAt &+ clock.resolution < maximumAgeNanoseconds
    }

    /// Claims the cache's one `run()`.
    ///
    /// - Precondition: Not claimed before; `name` says whose `run()` was called twice.
    package func claimRun(_ name: String) {
        precondition(!running.exchange(true, ordering: .relaxed), "\(name).run() was called twice")
    }

    @inline(__always)
    private func shard(_ index: Int) -> UnsafeMutablePointer<Mutex<Shard>> {
        (shards + index * shardStride).assumingMemoryBound(to: Mutex<Shard>.self)
    }

    /// FNV-1a over the key's bytes: cheap for the short keys the caches hold (user IDs, session storage names), and
    /// spread well enough over 16 shards.
    @inline(__always)
    private static func shardIndex(of key: String, mask: Int) -> Int {
        guard mask != 0 else { return 0 }
        var hash: UInt32 = 2_166_136_261
        for byte in key.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash ^ hash >> 16) & mask
    }
}
