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
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Monotonic clock reading in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}

/// Starts a detached OS thread that the library owns. Blocking hiredis I/O runs only on such threads, never on the
/// Swift cooperative pool. Returns `false` when the system refuses a new thread.
func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box: @unchecked Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    #if canImport(Darwin)
        var thread: pthread_t?
    #else
        var thread = pthread_t()
    #endif
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let result = pthread_create(
        &thread, &attributes,
        { raw in
            #if canImport(Darwin)
                let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            #else
                guard let raw else { return nil }
                let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            #endif
            chiredis_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
    pthread_attr_destroy(&attributes)
    if result != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        return false
    }
    return true
}

/// Wakes a thread blocked on `fd` without closing the descriptor (its number could be reused meanwhile).
func shutdownSocket(_ fd: Int32) {
    #if canImport(Darwin)
        _ = Darwin.shutdown(fd, Int32(SHUT_RDWR))
    #else
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    #endif
}
