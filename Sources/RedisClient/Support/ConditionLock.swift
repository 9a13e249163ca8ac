internal import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A pthread mutex with a condition variable on the monotonic clock.
///
/// The connection threads block on it between batches; `Synchronization.Mutex` has no condition variable.
final class ConditionLock: @unchecked Sendable {
    // Heap-allocated so their addresses never move: pthread objects must not be copied.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal. Call with the lock held.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal or until `deadline` (monotonic nanoseconds). Call with the lock held.
    func wait(untilMonotonicNanoseconds deadline: UInt64) {
        var time = timespec()
        #if canImport(Darwin)
            let remaining = deadline > monotonicNanoseconds() ? deadline - monotonicNanoseconds() : 0
            time.tv_sec = Int(remaining / 1_000_000_000)
            time.tv_nsec = Int(remaining % 1_000_000_000)
            pthread_cond_timedwait_relative_np(condition, mutex, &time)
        #else
            time.tv_sec = Int(deadline / 1_000_000_000)
            time.tv_nsec = Int(deadline % 1_000_000_000)
            pthread_cond_timedwait(condition, mutex, &time)
        #endif
    }

    func signal() { pthread_cond_signal(condition) }
}
