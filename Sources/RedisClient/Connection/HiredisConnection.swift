internal import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One connection: a ``RedisTransport`` (the socket) with hiredis' reader on top, connected, authenticated and
/// configured, or not at all.
///
/// The connection owns its socket; hiredis only parses the bytes read from it (`redisReaderFeed`,
/// `redisReaderGetReply`), which works the same in hiredis 0.14 and 1.x and whatever carries the bytes. Commands are
/// encoded on the caller's side (``RedisCommand``) and appended to an output buffer written in one go.
///
/// Ownership invariant: exactly one thread (a ``ConnectionWorker``'s, a subscriber's or the Sentinel watcher's) holds
/// an instance and calls into it; it is not `Sendable`, so no other thread can reach it. Those threads are woken with
/// a ``WakeSignal``, never by touching the socket.
final class HiredisConnection {
    private let transport: any RedisTransport
    private let reader: UnsafeMutablePointer<redisReader>
    private var output: [UInt8] = []
    /// Where reads land before the reader copies them; one per connection.
    private let input: UnsafeMutableRawBufferPointer
    /// How long a blocking ``readReply()`` waits (the handshake, one-off commands).
    private let replyTimeout: Duration
    let endpointDescription: String

    /// The socket, for `poll(2)`.
    var fileDescriptor: Int32 { transport.fileDescriptor }

    /// Whether the transport holds bytes that a `poll` would not announce; read them with ``fillReader()`` first.
    var hasBufferedBytes: Bool { transport.hasBufferedBytes }

    /// The size of one read from the socket.
    static let readSize = 16 * 1024

    /// Connects, and runs the handshake (`AUTH`, `SELECT`, `CLIENT SETNAME`) in one pipelined round trip.
    ///
    /// - Parameters:
    ///   - configuration: Credentials, timeouts and where to connect.
    ///   - node: A node to connect to instead of the configuration's endpoint (one a sentinel or the slot table
    ///     named).
    ///   - readTimeout: How long a reply may take here; `nil` uses the configuration's command timeout.
    ///   - requiresMaster: Whether the handshake also asks `ROLE` and refuses a node that is not a master.
    init(
        configuration: RedisConfiguration, node: RedisConfiguration.Endpoint? = nil, readTimeout: Duration? = nil,
        requiresMaster: Bool = false
    ) throws(RedisError) {
        chiredis_ignore_sigpipe()
        let description = node?.description ?? configuration.serverDescription
        guard let target = node ?? configuration.endpoint else {
            throw RedisError(
                .invalidConfiguration, "no node to connect to: the topology names none yet", context: description)
        }
        let timeout = readTimeout ?? configuration.commandTimeout
        let transport: any RedisTransport =
            if let tls = configuration.tls {
                try TLSTransport(
                    connectingTo: target, tls: tls, serverName: configuration.tlsServerName,
                    timeout: configuration.connectTimeout, sendTimeout: timeout, description: description)
            } else {
                try SocketTransport(
                    connectingTo: target, timeout: configuration.connectTimeout, sendTimeout: timeout,
                    description: description)
            }
        guard let reader = redisReaderCreate() else {
            throw RedisError(.connectionFailed, "hiredis could not allocate a reader", context: description)
        }
        self.transport = transport
        self.reader = reader
        self.input = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readSize, alignment: 16)
        self.replyTimeout = timeout
        self.endpointDescription = description
        // From here on every stored property is set, so a throw runs `deinit`, which frees the reader.
        try handshake(configuration, requiresMaster: requiresMaster, within: configuration.connectTimeout)
    }

    deinit {
        redisReaderFree(reader)
        input.deallocate()
    }

    /// The first round trip, bounded by the connect timeout: a connection is usable once the server has answered
    /// on it, never before.
    private func handshake(
        _ configuration: RedisConfiguration, requiresMaster: Bool, within timeout: Duration
    ) throws(RedisError) {
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
        if commands.isEmpty && !requiresMaster {
            // Without one round trip a connection would count as up before the server said a word: a TLS-only server
            // reached in plaintext, or one that refuses the client's certificate after a TLS 1.3 handshake, would
            // only fail on the first real command.
            commands.append((RedisCommand("PING"), .connectionFailed))
        }
        if requiresMaster {
            // A node a sentinel named may have been demoted since: never write to one that says it is a replica.
            commands.append((RedisCommand("ROLE"), .connectionFailed))
        }
        for (command, _) in commands { append(command.encoded) }
        for (command, code) in commands {
            let reply: RedisValue
            do {
                reply = try readReply(within: timeout)
            } catch where error.code == .timeout {
                throw RedisError(
                    .connectionFailed, "no reply within the connect timeout (\(timeout)) during the handshake",
                    context: "\(command.name) on \(endpointDescription)")
            } catch {
                // Closed during the handshake: the connection never became usable.
                let hint = error.code == .connectionClosed ? transport.closedDuringHandshakeHint : ""
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

    /// Queues bytes for the next write.
    @inline(__always)
    func append(_ encoded: [UInt8]) {
        output.append(contentsOf: encoded)
    }

    /// Writes everything queued without reading.
    func flush() throws(RedisError) {
        guard !output.isEmpty else { return }
        defer { output.removeAll(keepingCapacity: true) }
        let failure = output.withUnsafeBytes { bytes -> RedisError? in
            do throws(RedisError) {
                try transport.write(bytes)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// Reads what the transport has into the reader (one read; call when `poll` says readable, or
    /// ``hasBufferedBytes``); it may have had nothing yet. The end of the stream is
    /// ``RedisError/Code/connectionClosed``.
    func fillReader() throws(RedisError) {
        let count = try transport.read(into: input)
        guard count > 0 else { return }
        guard redisReaderFeed(reader, input.baseAddress?.assumingMemoryBound(to: CChar.self), count) == REDIS_OK else {
            throw RedisError(.protocolError, "the reader refused the bytes", context: endpointDescription)
        }
    }

    /// A reply already in the reader, without touching the socket.
    func bufferedReply() throws(RedisError) -> RedisValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
            throw RedisError(.protocolError, String(cString: chiredis_reader_errstr(reader)), context: endpointDescription)
        }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        guard let value = Self.convert(reply.assumingMemoryBound(to: redisReply.self)) else {
            throw RedisError(.protocolError, Self.notRESP2, context: endpointDescription)
        }
        return value
    }

    /// Writes what is queued and waits for one reply, blocking this thread at most the reply timeout per read: for
    /// the handshake and one-off commands on a thread of the library's.
    func readReply() throws(RedisError) -> RedisValue {
        try readReply(within: replyTimeout)
    }

    private func readReply(within timeout: Duration) throws(RedisError) -> RedisValue {
        try flush()
        var deadline = monotonicNanoseconds() &+ timeout.nanoseconds
        while true {
            if let reply = try bufferedReply() { return reply }
            if !hasBufferedBytes {
                let now = monotonicNanoseconds()
                guard now < deadline else {
                    throw RedisError(.timeout, "no reply within the command timeout", context: endpointDescription)
                }
                var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, Int32(clamping: (deadline - now + 999_999) / 1_000_000))
                if ready < 0 && errno != EINTR {
                    throw RedisError(.connectionClosed, "poll failed", context: endpointDescription)
                }
                if ready <= 0 { continue }
            }
            try fillReader()
            deadline = monotonicNanoseconds() &+ timeout.nanoseconds
        }
    }

    /// Polls the socket without sleeping until it is readable or the deadline passes; returns whether it became
    /// readable.
    func pollReadable(untilMonotonicNanoseconds deadline: UInt64) -> Bool {
        if hasBufferedBytes { return true }
        repeat {
            var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 0) > 0 { return true }
        } while monotonicNanoseconds() < deadline
        return false
    }

    /// Why a reply that hiredis parsed is refused: this client speaks RESP2 (it never sends `HELLO 3`), and hiredis
    /// 1.x's reader also parses RESP3's types (doubles, booleans, maps, pushes...), where 0.14's refuses their type
    /// byte. A server that sends one is refused the same way on both.
    static let notRESP2 = "a RESP3 reply on a RESP2 connection"

    /// The reply as a value, or `nil` when it (or an element of it) is not one of RESP2's five types.
    static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue? {
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
                guard let element = chiredis_reply_element(reply, index), let converted = convert(element) else {
                    return nil
                }
                elements.append(converted)
            }
            return .array(elements)
        case REDIS_REPLY_NIL:
            return .null
        default:
            return nil
        }
    }

    @inline(__always)
    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
