internal import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One hiredis context: connected, authenticated and configured, or not at all.
///
/// Ownership invariant: exactly one thread (a ``ConnectionWorker``'s, a subscriber's or the Sentinel watcher's) holds
/// an instance and calls into it; it is not `Sendable`, so no other thread can reach it. Those threads are woken with
/// a ``WakeSignal``, never by touching the socket.
final class HiredisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    let endpointDescription: String

    /// The socket, for `poll(2)` and for waking the owning thread from another one.
    var fileDescriptor: Int32 { context.pointee.fd }

    /// Connects, applies the read/write timeout, and runs the handshake (`AUTH`, `SELECT`, `CLIENT SETNAME`)
    /// in one pipelined round trip.
    ///
    /// - Parameters:
    ///   - configuration: Credentials, timeouts and where to connect.
    ///   - node: A node to connect to instead of the configuration's endpoint (one a sentinel named).
    ///   - readTimeout: The socket timeout; `nil` uses the configuration's command timeout.
    ///   - requiresMaster: Whether the handshake also asks `ROLE` and refuses a node that is not a master.
    init(
        configuration: RedisConfiguration, node: RedisConfiguration.Endpoint? = nil, readTimeout: Duration? = nil,
        requiresMaster: Bool = false
    ) throws(RedisError) {
        chiredis_ignore_sigpipe()
        let description =
            node?.description
            ?? configuration.tlsTunnel.map { "\(configuration.serverDescription) (TLS through \($0))" }
            ?? configuration.serverDescription
        endpointDescription = description
        guard let target = node ?? configuration.connectEndpoint else {
            throw RedisError(
                .invalidConfiguration, "no node to connect to: the topology names none yet", context: description)
        }
        let connectMilliseconds = configuration.connectTimeout.wholeMillisecondsRoundedUp
        let connected: UnsafeMutablePointer<redisContext>? =
            switch target {
            case .tcp(let host, let port): chiredis_connect_tcp(host, Int32(port), connectMilliseconds)
            case .unixSocket(let path): chiredis_connect_unix(path, connectMilliseconds)
            }
        guard let connected else {
            throw RedisError(.connectionFailed, "hiredis could not allocate a context", context: endpointDescription)
        }
        // From here on every stored property is set, so a throw runs `deinit`, which frees the context.
        context = connected
        if connected.pointee.err != 0 {
            let message = String(cString: chiredis_errstr(connected))
            let timedOut = message.contains("timed out") || message.contains("temporarily unavailable")
            throw RedisError(
                .connectionFailed,
                timedOut ? "connect timed out after \(configuration.connectTimeout)" : "cannot connect: \(message)",
                context: endpointDescription)
        }
        // hiredis #593: a new or reconnected context has no SO_RCVTIMEO until it is set again.
        let timeout = (readTimeout ?? configuration.commandTimeout).wholeMillisecondsRoundedUp
        if chiredis_set_timeout(connected, timeout) != REDIS_OK {
            throw RedisError(.connectionFailed, "cannot set the socket timeout", context: endpointDescription)
        }
        if case .tcp = target { _ = redisEnableKeepAlive(connected) }
        try handshake(configuration, requiresMaster: requiresMaster)
    }

    deinit { redisFree(context) }

    private func handshake(_ configuration: RedisConfiguration, requiresMaster: Bool) throws(RedisError) {
        var commands: [(RedisCommand, RedisError.Code)] = []
        if let password = configuration.password {
            let auth =
                if let user = configuration.username {
                    RedisCommand("AUTH", user, password)
                } else {
                    RedisCommand("AUTH", password)
                }
            commands.append((auth, .authenticationFailed))
        }
        if configuration.database != 0 {
            commands.append((RedisCommand("SELECT", configuration.database), .invalidConfiguration))
        }
        if let name = configuration.clientName {
            commands.append((RedisCommand("CLIENT", "SETNAME", name), .invalidConfiguration))
        }
        if configuration.tlsTunnel != nil {
            // A tunnel accepts on loopback before it has reached the server, and closes the connection when the TLS
            // leg fails (refused, wrong certificate). One PING proves the whole path before the pool uses it.
            commands.append((RedisCommand("PING"), .connectionFailed))
        }
        if requiresMaster {
            // A node a sentinel named may have been demoted since: never write to one that says it is a replica.
            commands.append((RedisCommand("ROLE"), .connectionFailed))
        }
        guard !commands.isEmpty else { return }
        for (command, _) in commands { append(command.encoded) }
        for (command, code) in commands {
            let reply: RedisValue
            do {
                reply = try readReply()
            } catch {
                // Closed during the handshake: the connection never became usable. Through a TLS tunnel this is
                // how a failed TLS leg looks (refused, or a certificate the tunnel does not trust).
                let hint = configuration.tlsTunnel == nil ? "" : "; the TLS tunnel's log says why"
                throw RedisError(
                    .connectionFailed, "\(error.message) during the handshake\(hint)",
                    context: "\(command.name) on \(endpointDescription)")
            }
            if case .error(let message) = reply {
                throw RedisError(code, message, context: "\(command.name) on \(endpointDescription)")
            }
            if command.name == "ROLE", reply.array?.first?.string != "master" {
                throw RedisError(
                    .notMaster,
                    "the node says it is a \(reply.array?.first?.string ?? "node of unknown role"), not a master",
                    context: "ROLE on \(endpointDescription)")
            }
        }
    }

    /// Queues bytes for the next write (a memcpy into hiredis' output buffer).
    @inline(__always)
    func append(_ encoded: [UInt8]) {
        encoded.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                // Only fails when the buffer cannot grow (out of memory); the next read then reports it.
                _ = redisAppendFormattedCommand(context, chars.baseAddress, chars.count)
            }
        }
    }

    /// Writes what is queued (if the reader has nothing buffered) and reads one reply, blocking this thread.
    func readReply() throws(RedisError) -> RedisValue {
        var reply: UnsafeMutablePointer<redisReply>?
        var savedErrno: Int32 = 0
        guard chiredis_get_reply(context, &reply, &savedErrno) == REDIS_OK, let reply else {
            throw currentError(errno: savedErrno)
        }
        defer { freeReplyObject(reply) }
        return Self.convert(reply)
    }

    /// Writes everything queued without reading.
    func flush() throws(RedisError) {
        var savedErrno: Int32 = 0
        if chiredis_flush(context, &savedErrno) != REDIS_OK { throw currentError(errno: savedErrno) }
    }

    /// Reads what the socket holds into the reader (one `read(2)`; call when `poll` says readable).
    func fillReader() throws(RedisError) {
        var savedErrno: Int32 = 0
        if chiredis_buffer_read(context, &savedErrno) != REDIS_OK { throw currentError(errno: savedErrno) }
    }

    /// A reply already in the reader, without touching the socket.
    func bufferedReply() throws(RedisError) -> RedisValue? {
        var reply: UnsafeMutablePointer<redisReply>?
        guard chiredis_reader_reply(context, &reply) == REDIS_OK else { throw currentError(errno: 0) }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return Self.convert(reply)
    }

    /// Polls the socket without sleeping until it is readable or the deadline passes; returns whether it became
    /// readable.
    func pollReadable(untilMonotonicNanoseconds deadline: UInt64) -> Bool {
        repeat {
            if isReadableNow() { return true }
        } while monotonicNanoseconds() < deadline
        return false
    }

    /// Whether the socket has data, an end of stream or an error to report: a `poll(2)` that does not wait.
    private func isReadableNow() -> Bool {
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    private func currentError(errno savedErrno: Int32) -> RedisError {
        let message = String(cString: chiredis_errstr(context))
        switch context.pointee.err {
        case REDIS_ERR_IO where savedErrno == EAGAIN || savedErrno == EWOULDBLOCK:
            return RedisError(.timeout, "no reply within the command timeout", context: endpointDescription)
        case REDIS_ERR_EOF:
            return RedisError(.connectionClosed, "server closed the connection", context: endpointDescription)
        case REDIS_ERR_PROTOCOL:
            return RedisError(.protocolError, message, context: endpointDescription)
        default:
            let text = message.isEmpty ? "connection error" : message
            return RedisError(.connectionClosed, text, context: endpointDescription)
        }
    }

    static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(value.str, value.len))
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = chiredis_reply_element(reply, index) { elements.append(convert(element)) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    @inline(__always)
    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
