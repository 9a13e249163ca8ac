internal import CHiredis

/// Parses raw RESP2 bytes with hiredis' own reader and converts every complete reply, exactly as a connection does:
/// for the fuzz target that feeds the reader arbitrary bytes (`session-fuzz`), through SPI, not public API.
@_spi(Fuzzing) public enum ReplyReader {
    /// The complete replies in `bytes`, and the reader's error if it stopped on one (a protocol error; bytes after
    /// it are not read). An incomplete last reply is neither.
    public static func replies(in bytes: [UInt8]) -> (replies: [RedisValue], error: RedisError?) {
        guard let reader = redisReaderCreate() else { return ([], RedisError(.protocolError, "no reader")) }
        defer { redisReaderFree(reader) }
        let fed = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
        }
        guard fed == REDIS_OK else { return ([], RedisError(.protocolError, "the reader refused the bytes")) }
        var replies: [RedisValue] = []
        while true {
            var reply: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
                let reason = String(cString: chiredis_reader_errstr(reader))
                return (replies, RedisError(.protocolError, "hiredis could not parse the reply: \(reason)"))
            }
            guard let reply else { return (replies, nil) }
            let converted = HiredisConnection.convert(reply.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(reply)
            guard let converted else { return (replies, RedisError(.protocolError, HiredisConnection.notRESP2)) }
            replies.append(converted)
        }
    }
}
