/// What one caller hands a connection: the encoded commands of a single command or a whole pipeline, written in one
/// copy, and how many replies belong to them.
struct ConnectionRequest: Sendable {
    /// The encoded commands, written with one copy into the connection's output buffer.
    let payload: [UInt8]
    /// How many replies belong to this request (1 for a command, N for a pipeline).
    let replyCount: Int
    /// The command name, for error context.
    let name: String

    init(payload: [UInt8], replyCount: Int, name: String) {
        self.payload = payload
        self.replyCount = replyCount
        self.name = name
    }

    init(_ command: RedisCommand) {
        self.init(payload: command.encoded, replyCount: 1, name: command.name)
    }
}
