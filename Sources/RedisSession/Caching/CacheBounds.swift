/// How much a cache holds and how old an entry it serves: the part of ``SessionCache/Configuration`` and the
/// settings cache's configuration that they share. Its fields read and write through either configuration
/// (`configuration.capacity`).
public struct CacheBounds: Sendable, Hashable {
    /// Most entries held; beyond it the least recently used goes. Default 10,000.
    public var capacity: Int
    /// An entry older than this is read from Redis again, whatever was reported or not: the bound on staleness if a
    /// report or an event is lost. Default 60 s.
    public var maximumAge: Duration

    /// Creates bounds; both must be positive.
    public init(capacity: Int = 10_000, maximumAge: Duration = .seconds(60)) {
        precondition(capacity > 0 && maximumAge > .zero, "capacity and maximum age must be positive")
        self.capacity = capacity
        self.maximumAge = maximumAge
    }
}

/// What every cache counts: the part of each cache's statistics that they share. Its fields read through either
/// statistics (`statistics.hits`).
public struct CacheCounts: Sendable, Hashable {
    /// Lookups answered from memory.
    public var hits: Int
    /// Lookups that had to read Redis.
    public var misses: Int
    /// Entries held (including loads in flight).
    public var count: Int
    /// Times the cache restarted empty after a gap in what keeps it exact.
    public var resyncs: Int

    /// Creates counts.
    public init(hits: Int, misses: Int, count: Int, resyncs: Int) {
        self.hits = hits
        self.misses = misses
        self.count = count
        self.resyncs = resyncs
    }
}

/// A cache's configuration: its ``CacheBounds`` and what is particular to it.
@dynamicMemberLookup
public protocol CacheConfiguration: Sendable, Hashable {
    /// Size and staleness bounds.
    var bounds: CacheBounds { get set }
}

extension CacheConfiguration {
    /// The bounds' fields, as fields of the configuration.
    public subscript<Value>(dynamicMember field: WritableKeyPath<CacheBounds, Value>) -> Value {
        get { bounds[keyPath: field] }
        set { bounds[keyPath: field] = newValue }
    }
}

/// A cache's statistics: its ``CacheCounts`` and what is particular to it.
@dynamicMemberLookup
public protocol CacheStatistics: Sendable, Hashable {
    /// What every cache counts.
    var counts: CacheCounts { get }
}

extension CacheStatistics {
    /// The counts' fields, as fields of the statistics.
    public subscript<Value>(dynamicMember field: KeyPath<CacheCounts, Value>) -> Value { counts[keyPath: field] }
}
