internal import CHiredis
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Nanoseconds on the monotonic clock: for deadlines, backoff and the age of cached entries, which must not move
/// with the wall clock.
@inline(__always)
package func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Where the caches and the reconnect backoff read the time: the system's monotonic clock in production, a clock a
/// test moves by hand (``MonotonicClock/manual(_:)``), so expiry and backoff are tested without sleeping.
@_spi(Internals) public struct MonotonicClock: Sendable {
    /// The current reading, in nanoseconds.
    public let now: @Sendable () -> UInt64
    /// How far behind the true time a reading may be; an expiry check adds it, so a coarse clock errs on the early
    /// side.
    public let resolution: UInt64

    public init(resolution: UInt64 = 0, now: @escaping @Sendable () -> UInt64) {
        self.now = now
        self.resolution = resolution
    }

    /// The monotonic clock, to the nanosecond.
    public static let system = MonotonicClock { monotonicNanoseconds() }

    /// The monotonic clock to the kernel's tick: on Linux a read of memory the kernel updates, several times cheaper
    /// than the precise clock, which is what a cache lookup on every request wants. Elsewhere the precise clock.
    public static let coarse: MonotonicClock = {
        #if os(Linux)
            var tick = timespec()
            guard clock_getres(CLOCK_MONOTONIC_COARSE, &tick) == 0 else { return system }
            let resolution = UInt64(tick.tv_sec) * 1_000_000_000 + UInt64(tick.tv_nsec)
            return MonotonicClock(resolution: resolution) {
                var time = timespec()
                clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
                return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
            }
        #else
            return system
        #endif
    }()

}

/// A clock that moves only when told: for tests of expiry, maximum age and backoff that must not sleep.
package final class ManualClock: Sendable {
    private let reading: Atomic<UInt64>

    /// Starts at `start` nanoseconds (one second by default, so "zero" is never a special reading).
    package init(start: UInt64 = 1_000_000_000) { reading = Atomic(start) }

    /// Moves the clock forward.
    package func advance(by duration: Duration) { reading.add(duration.nanoseconds, ordering: .relaxed) }

    /// The clock to hand to what is tested.
    package var clock: MonotonicClock { MonotonicClock { [self] in reading.load(ordering: .relaxed) } }
}

/// The CPU the calling thread runs on (Linux: a read of memory the kernel keeps per thread), or -1 where the
/// system cannot say: what the caches use to give each core its own read lock.
@_spi(Internals) public func currentCPU() -> Int {
    Int(chiredis_current_cpu())
}
