internal import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A self-pipe that wakes a thread waiting in `poll(2)`: the one way every connection thread is woken, whether it
/// waits for work, for a reply or for a backoff to end, and whatever the socket under it (plain now, TLS next).
///
/// Both ends are non-blocking: a signal to a pipe that is already full is dropped, which loses nothing, since one
/// byte waiting already wakes the next `poll`.
final class WakeSignal: Sendable {
    /// The end to `poll` for a thread that waits on more than one socket; call ``drain()`` when it is readable.
    let readEnd: Int32
    private let writeEnd: Int32

    /// `nil` when the system has no descriptors left.
    init?() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return nil }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Wakes the waiting thread, or the next wait if none is waiting now.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// What a ``wait(on:timeoutMilliseconds:)`` saw.
    struct Readiness {
        /// The socket has data, an end of stream or an error to report.
        var socket: Bool
        /// Somebody called ``signal()``; the signal is consumed.
        var woken: Bool
        /// `poll` itself failed.
        var failed: Bool

        var timedOut: Bool { !socket && !woken && !failed }
    }

    /// Waits until `socket` is readable, a signal arrives, or `timeoutMilliseconds` pass (`-1`: no limit). A
    /// negative `socket` waits for the signal alone.
    func wait(on socket: Int32, timeoutMilliseconds: Int32) -> Readiness {
        let ready = chiredis_wait_readable(socket, readEnd, timeoutMilliseconds)
        if ready < 0 { return Readiness(socket: false, woken: false, failed: true) }
        let woken = ready & 2 != 0
        if woken { drain() }
        return Readiness(socket: ready & 1 != 0, woken: woken, failed: false)
    }

    /// Consumes the signals sent so far.
    func drain() {
        // Signals come at most once per sleep, so one read almost always empties the pipe; a full buffer means there
        // may be more.
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let size = MemoryLayout.size(ofValue: buffer)
        while withUnsafeMutableBytes(of: &buffer, { read(readEnd, $0.baseAddress, $0.count) }) == size {}
    }
}
