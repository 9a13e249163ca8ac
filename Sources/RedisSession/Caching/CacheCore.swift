@_spi(Internals) public import RedisClient
public import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What both caches share: the table, the serving flag and the generation, hit and miss counters, the clock, and
/// reads that scale with cores.
///
/// Every request of an instance reads its caches, so a read must not write memory that another core reads too: a
/// cache line written by two cores moves between them on every write, and one lock taken by every lookup would make
/// two cores slower than one. So a read takes only a lock of its own core's (one per CPU, each on its own 128-byte
/// lines, where its hits and misses are counted too), and writes nothing shared: the table is read in place, and
/// recency is a mark set once per entry (the CLOCK algorithm) instead of a move to the front on every read. A write
/// (a store, a drop, a clear) takes every core's lock, in order: writes are rare next to reads, and this is what
/// they pay.
///
/// The exactness rules follow from that: a reader holds a lock every writer takes, so it sees the table, the serving
/// flag and the generation as one consistent state.
/// - Nothing is served or stored while the cache is not serving.
/// - Every clear moves the generation on, so a store that began before it (carrying the older generation) stores
///   nothing.
///
/// SPI rather than `package`: the read path is `@inlinable` so that the settings cache, in another module, gets it
/// specialised, and Swift 6.3 specialises `@inlinable` code across modules only when it is public. Measured with
/// `session-bench events` on 2026-12-04: the cached timezone lookup takes 54 ns with this SPI and 169-181 ns with
/// the same code declared `package` (the target is under 60 ns). Without `@_spi(Internals) import` none of it is
/// visible, so it is no part of the API a user sees.
@_spi(Internals) public final class CacheCore<Entry: Sendable>: @unchecked Sendable {
    /// The table and the flags that go with it. Read under one core's lock, written under all of them.
    @frozen public struct State: Sendable {
        public var table: LRUTable<Entry>
        public var isServing = false
        /// Bumped by every clear, and by whatever must keep an older read out of the cache.
        public var generation: UInt64 = 0
        /// For entries that mark work in flight (a load that has not returned yet).
        public var nextToken: UInt64 = 0

        @inlinable init(table: LRUTable<Entry>) { self.table = table }
    }

    /// One core's hits and misses, counted under that core's lock.
    @frozen public struct Counters: Sendable {
        public var hits = 0
        public var misses = 0

        @inlinable init() {}
    }

    /// Reads the time for ages and expiry.
    public let clock: MonotonicClock
    /// Entries older than this are not served.
    public let maximumAgeNanoseconds: UInt64
    /// How many read locks: the CPUs, rounded up to a power of two, at most 64.
    public let readerCount: Int

    @usableFromInline let state: UnsafeMutablePointer<State>
    /// One `Mutex<Counters>` per reader, `readerStride` bytes apart.
    @usableFromInline let readers: UnsafeMutableRawPointer
    @usableFromInline let readerStride: Int
    @usableFromInline let readerMask: Int
    /// A mark per table slot: read since the last eviction pass looked at it.
    @usableFromInline let referenced: UnsafeMutablePointer<Atomic<UInt8>>
    private let capacity: Int
    private let running = Atomic<Bool>(false)

    /// A cache of at most `bounds.capacity` entries, none served older than `bounds.maximumAge`.
    public init(bounds: CacheBounds, clock: MonotonicClock) {
        let capacity = bounds.capacity
        self.clock = clock
        self.maximumAgeNanoseconds = bounds.maximumAge.nanoseconds
        self.capacity = capacity
        let processors = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_CONF))))
        var count = 1
        while count < min(processors, 64) { count <<= 1 }
        self.readerCount = count
        self.readerMask = count - 1
        self.readerStride = (MemoryLayout<Mutex<Counters>>.size + 127) / 128 * 128
        self.readers = UnsafeMutableRawPointer.allocate(byteCount: readerStride * count, alignment: 128)
        for index in 0..<count {
            (readers + index * readerStride).bindMemory(to: Mutex<Counters>.self, capacity: 1)
                .initialize(to: Mutex(Counters()))
        }
        self.state = .allocate(capacity: 1)
        state.initialize(to: State(table: LRUTable(capacity: capacity)))
        self.referenced = .allocate(capacity: capacity)
        for slot in 0..<capacity { (referenced + slot).initialize(to: Atomic(0)) }
    }

    deinit {
        for index in 0..<readerCount { reader(index).deinitialize(count: 1) }
        readers.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
        referenced.deinitialize(count: capacity)
        referenced.deallocate()
    }

    // MARK: Reading

    /// Runs `body` under this core's read lock, with the state to read and this core's counters.
    ///
    /// - Important: `body` must not change the state: other cores read it at the same time. It gets the state
    ///   `inout` only because a Swift value read in place is never retained, while a borrowed copy of one held in
    ///   shared memory is, and a reference count that two cores change on every lookup is the very line this type
    ///   exists not to share.
    @inlinable
    public func read<Result>(_ body: (inout State, inout Counters) -> Result) -> Result {
        reader(currentReader(mask: readerMask)).pointee.withLock { counters in
            body(&state.pointee, &counters)
        }
    }

    /// Marks a slot read, for the eviction pass; writes only the first time, so hot entries stay read-only.
    @inlinable
    public func markUsed(_ slot: Int) {
        if referenced[slot].load(ordering: .relaxed) == 0 { referenced[slot].store(1, ordering: .relaxed) }
    }

    /// Whether an entry stored at `storedAt` is younger than the maximum age at `now` (a coarse clock's reading
    /// counts as late as it may be).
    @inlinable
    public func isFresh(storedAt: UInt64, now: UInt64) -> Bool {
        now &- storedAt &+ clock.resolution < maximumAgeNanoseconds
    }

    /// The serving flag and the generation now.
    public var phase: (isServing: Bool, generation: UInt64) {
        read { state, _ in (state.isServing, state.generation) }
    }

    /// Entries held, hits and misses.
    public var totals: (count: Int, hits: Int, misses: Int) {
        var totals = (count: 0, hits: 0, misses: 0)
        for index in 0..<readerCount {
            reader(index).pointee.withLock { counters in
                totals.hits += counters.hits
                totals.misses += counters.misses
            }
        }
        totals.count = read { state, _ in state.table.count }
        return totals
    }

    // MARK: Writing

    /// Runs `body` with every read lock held, so it may change the state.
    public func write<Result: Sendable>(_ body: (inout State) -> Result) -> Result {
        withReadersLocked(from: 0) { body(&state.pointee) }
    }

    /// Stores `value` under `key` in `state` (inside ``write(_:)``): when full, the least recently used entry goes,
    /// where "used" is a read marked since the eviction pass last came by.
    public func store(_ key: String, _ value: Entry, in state: inout State) {
        let slot = state.table.set(key, value) { [referenced] slot in
            referenced[slot].exchange(0, ordering: .relaxed) != 0
        }
        referenced[slot].store(0, ordering: .relaxed)
    }

    /// Starts (or stops) serving, moves the generation on and empties the table.
    public func reset(serving: Bool) {
        write { state in
            state.table.removeAll()
            state.generation &+= 1
            state.isServing = serving
        }
    }

    /// Empties the table and moves the generation on, keeping the serving flag.
    public func clear() {
        write { state in
            state.table.removeAll()
            state.generation &+= 1
        }
    }

    /// Claims the cache's one `run()`.
    ///
    /// - Precondition: Not claimed before; `name` says whose `run()` was called twice.
    public func claimRun(_ name: String) {
        precondition(!running.exchange(true, ordering: .relaxed), "\(name).run() was called twice")
    }

    // MARK: Internals

    @inlinable
    func reader(_ index: Int) -> UnsafeMutablePointer<Mutex<Counters>> {
        (readers + index * readerStride).assumingMemoryBound(to: Mutex<Counters>.self)
    }

    private func withReadersLocked<Result: Sendable>(from index: Int, _ body: () -> Result) -> Result {
        guard index < readerCount else { return body() }
        return reader(index).pointee.withLock { _ in withReadersLocked(from: index + 1, body) }
    }
}

/// The read lock of the core this thread runs on. A thread that moves to another core meanwhile only shares a
/// lock, which stays correct; where the CPU is unknown, the thread's identity spreads threads over the locks.
@usableFromInline
func currentReader(mask: Int) -> Int {
    guard mask != 0 else { return 0 }
    let cpu = currentCPU()
    if cpu >= 0 { return cpu & mask }
    return Int(bitPattern: UInt(bitPattern: pthread_self().hashValue)) & mask
}
