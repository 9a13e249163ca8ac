internal import COpenSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// TLS on a socket the connection owns: the system's OpenSSL encrypts what ``HiredisConnection`` writes and decrypts
/// what its reader parses.
///
/// The socket is non-blocking once the handshake starts, so a read never waits inside OpenSSL: a partial record or a
/// TLS 1.3 session ticket reads as "nothing yet", and the connection's thread goes back to its one `poll` on the
/// socket and its wake-up signal. Decrypted bytes OpenSSL holds ahead (``hasBufferedBytes``) are read before any
/// `poll`, which would not announce them.
final class TLSTransport: RedisTransport {
    private let socket: SocketTransport
    private let context: OpaquePointer
    private let session: OpaquePointer
    private let description: String
    private let sendTimeoutMilliseconds: Int32
    /// The server asked for a client certificate during the handshake, and none is configured.
    private let certificateRequested: Bool

    var fileDescriptor: Int32 { socket.fileDescriptor }
    var hasBufferedBytes: Bool { ctls_pending(session) > 0 }

    var closedDuringHandshakeHint: String {
        certificateRequested
            ? " (the server asked for a client certificate and none is configured: give cert= and key=)" : ""
    }

    /// The negotiated protocol, `TLSv1.3` or `TLSv1.2`.
    var protocolVersion: String { String(cString: ctls_protocol(session)) }

    /// Connects to `endpoint` and runs the TLS handshake, both within `timeout`; writes then block at most
    /// `sendTimeout`.
    ///
    /// - Throws: ``RedisError/Code/connectionFailed`` with OpenSSL's reason: an untrusted chain, a certificate that
    ///   does not name `serverName`, an expired one, a server that does not speak TLS, a handshake that does not
    ///   finish in time; ``RedisError/Code/invalidConfiguration`` for a CA, certificate or key file that cannot be
    ///   used.
    init(
        connectingTo endpoint: RedisConfiguration.Endpoint, tls: RedisConfiguration.TLS, serverName: String?,
        timeout: Duration, sendTimeout: Duration, description: String
    ) throws(RedisError) {
        let started = monotonicNanoseconds()
        self.description = description
        sendTimeoutMilliseconds = Int32(clamping: sendTimeout.wholeMillisecondsRoundedUp)
        guard (tls.certificateFile == nil) == (tls.keyFile == nil) else {
            throw RedisError(
                .invalidConfiguration, "a TLS client certificate needs its key, and a key its certificate",
                context: description)
        }
        let verify = tls.verification == .full
        guard !verify || serverName != nil else {
            throw RedisError(
                .invalidConfiguration,
                "TLS verification needs a server name: set TLS.serverName (sni=) for a server reached by a Unix socket",
                context: description)
        }
        var reason = [CChar](repeating: 0, count: 512)
        guard
            let context = ctls_context_new(
                tls.caFile, tls.certificateFile, tls.keyFile, verify ? 1 : 0, &reason, reason.count)
        else {
            throw RedisError(.invalidConfiguration, "TLS: \(Self.text(reason))", context: description)
        }
        if !verify {
            Self.warnUnverified(description)
        }
        let socket: SocketTransport
        do throws(RedisError) {
            socket = try SocketTransport(
                connectingTo: endpoint, timeout: timeout, sendTimeout: sendTimeout, description: description)
        } catch {
            ctls_context_free(context)
            throw error
        }
        let elapsed = Duration.nanoseconds(Int64(clamping: monotonicNanoseconds() &- started))
        let left = Int32(clamping: max(Duration.milliseconds(1), timeout - elapsed).wholeMillisecondsRoundedUp)
        var timedOut: Int32 = 0
        var requested: Int32 = 0
        guard
            let session = ctls_connect(
                context, socket.fileDescriptor, serverName, left, &reason, reason.count, &timedOut, &requested)
        else {
            ctls_context_free(context)
            let why = Self.text(reason)
            let message =
                timedOut != 0
                ? "TLS handshake timed out after \(timeout): \(why)"
                : "TLS handshake failed: \(why)\(Self.hint(for: why, serverName: serverName))"
            throw RedisError(.connectionFailed, message, context: description)
        }
        self.socket = socket
        self.context = context
        self.session = session
        certificateRequested = requested != 0
    }

    deinit {
        ctls_close(session)
        ctls_context_free(context)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(RedisError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var reason = [CChar](repeating: 0, count: 256)
        switch Int(ctls_write_all(session, fileDescriptor, base, bytes.count, sendTimeoutMilliseconds, &reason, reason.count)) {
        case 0:
            return
        case CTLS_WOULD_BLOCK:
            throw RedisError(.timeout, "the server took no data within the command timeout", context: description)
        default:
            throw RedisError(.connectionClosed, "connection lost: \(Self.text(reason))", context: description)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(RedisError) -> Int {
        var reason = [CChar](repeating: 0, count: 256)
        let count = ctls_read(session, buffer.baseAddress, buffer.count, &reason, reason.count)
        if count > 0 { return count }
        switch count {
        case CTLS_WOULD_BLOCK:
            return 0
        case CTLS_CLOSED:
            throw RedisError(.connectionClosed, "server closed the connection", context: description)
        default:
            throw RedisError(.connectionClosed, "connection lost: \(Self.text(reason))", context: description)
        }
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// What the usual causes of a reason look like from here, so the message says what to change.
    private static func hint(for reason: String, serverName: String?) -> String {
        if reason.contains("wrong version number") || reason.contains("packet length too long")
            || reason.contains("record layer failure")
        {
            return " (the server does not speak TLS on this port: is it a plaintext port? use redis:// for it, or "
                + "its tls-port)"
        }
        if reason.contains("hostname mismatch") || reason.contains("IP address mismatch") {
            return " (the certificate does not name '\(serverName ?? "")': connect by a name it carries, or set sni=)"
        }
        if reason.contains("unable to get local issuer") || reason.contains("self-signed certificate")
            || reason.contains("self signed certificate")
        {
            return " (the chain does not lead to a trusted CA: give its CA with ca=PATH)"
        }
        if reason.contains("has expired") {
            return " (the server's certificate has expired: renew it on the server)"
        }
        return ""
    }

    /// Every unverified connect says so, on standard error: a library with no logger still must not be quiet about
    /// a connection anyone on the path can read.
    private static func warnUnverified(_ description: String) {
        let line =
            "warning: RedisClient: TLS to \(description) with certificate verification OFF (verify=none, "
            + ".insecureNoVerification): anyone on the network path can pose as the server\n"
        ctls_warn(line)
    }
}
