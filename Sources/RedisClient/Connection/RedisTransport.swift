internal import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The bytes under a connection: a socket the connection owns, plain (``SocketTransport``) or TLS
/// (``TLSTransport``).
///
/// hiredis only parses what comes out of it (``HiredisConnection`` feeds its reader), so a transport is all a new
/// way of reaching a server needs to implement. One thread owns an instance: it is not `Sendable`.
protocol RedisTransport: AnyObject {
    /// The socket, for `poll(2)`.
    var fileDescriptor: Int32 { get }

    /// Bytes the transport holds already, that a `poll` on the socket would not announce (TLS records decrypted
    /// ahead): read them before waiting.
    var hasBufferedBytes: Bool { get }

    /// Writes all of `bytes`, blocking at most the send timeout.
    func write(_ bytes: UnsafeRawBufferPointer) throws(RedisError)

    /// What to add to the message when the server closed the connection before answering the first command: the
    /// likely reason, as far as this transport can tell.
    var closedDuringHandshakeHint: String { get }

    /// Reads what is there into `buffer` (call when `poll` says the socket is readable, or ``hasBufferedBytes``).
    /// `0` means nothing to read yet (TLS: a partial record, or a session ticket with no data behind it): wait again.
    ///
    /// - Throws: ``RedisError/Code/connectionClosed`` when the server closed the connection or it broke.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(RedisError) -> Int
}

/// A plain TCP or Unix socket: connected with a timeout, `TCP_NODELAY` and keep-alive, closed when released.
final class SocketTransport: RedisTransport {
    let fileDescriptor: Int32
    private let description: String

    var hasBufferedBytes: Bool { false }

    var closedDuringHandshakeHint: String {
        " (a TLS-only server closes a plaintext connection: if this is a TLS port, use rediss://)"
    }

    /// Connects to `endpoint` within `timeout`; writes then block at most `sendTimeout`.
    ///
    /// - Throws: ``RedisError/Code/connectionFailed`` that says why: refused, timed out, an unknown host.
    init(
        connectingTo endpoint: RedisConfiguration.Endpoint, timeout: Duration, sendTimeout: Duration,
        description: String
    ) throws(RedisError) {
        self.description = description
        var reason = [CChar](repeating: 0, count: 256)
        var timedOut: Int32 = 0
        let milliseconds = Int32(clamping: timeout.wholeMillisecondsRoundedUp)
        let sendMilliseconds = Int32(clamping: sendTimeout.wholeMillisecondsRoundedUp)
        let fd: Int32 =
            switch endpoint {
            case .tcp(let host, let port):
                chiredis_connect_tcp_socket(
                    host, Int32(port), milliseconds, sendMilliseconds, &reason, reason.count, &timedOut)
            case .unixSocket(let path):
                chiredis_connect_unix_socket(path, milliseconds, sendMilliseconds, &reason, reason.count, &timedOut)
            }
        guard fd >= 0 else {
            let text = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw RedisError(
                .connectionFailed, timedOut != 0 ? "connect timed out after \(timeout)" : "cannot connect: \(text)",
                context: description)
        }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    func write(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        guard chiredis_send_all(fileDescriptor, base, bytes.count) == 0 else {
            throw Self.failure(errno: chiredis_errno(), writing: true, context: description)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(RedisError) -> Int {
        let count = chiredis_receive(fileDescriptor, buffer.baseAddress, buffer.count)
        guard count >= 0 else { throw Self.failure(errno: chiredis_errno(), writing: false, context: description) }
        guard count > 0 else { throw RedisError(.connectionClosed, "server closed the connection", context: description) }
        return count
    }

    /// A failed `send` or `recv` as the client reports it.
    static func failure(errno code: Int32, writing: Bool, context: String) -> RedisError {
        if code == EAGAIN || code == EWOULDBLOCK {
            return RedisError(
                .timeout, writing ? "the server took no data within the command timeout" : "no reply within the command timeout",
                context: context)
        }
        let reason = String(cString: strerror(code))
        return RedisError(.connectionClosed, "connection lost: \(reason)", context: context)
    }
}
