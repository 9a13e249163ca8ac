/// A Lua script, named by its SHA-1 as Redis does, so it can be run with `EVALSHA` without sending its source.
///
/// ```swift
/// let touch = RedisScript("return redis.call('PEXPIRE', KEYS[1], ARGV[1])")
/// try await client.evaluate(touch, keys: [key], arguments: [1_800_000])
/// ```
public struct RedisScript: Sendable, Hashable {
    /// The Lua source.
    public let source: String
    /// The lowercase hex SHA-1 of the source, as `SCRIPT LOAD` returns it.
    public let sha1: String

    /// Creates a script from its Lua source.
    public init(_ source: String) {
        self.source = source
        self.sha1 = SHA1.hexDigest(Array(source.utf8))
    }
}

extension RedisClient {
    /// Runs a script by its SHA-1 (`EVALSHA`); when the server does not know it (`NOSCRIPT`: after a restart or
    /// `SCRIPT FLUSH`), sends it once with `EVAL`, which also caches it for the next call.
    ///
    /// - Parameters:
    ///   - script: The script.
    ///   - keys: The keys it touches (`KEYS[i]`).
    ///   - arguments: Its other arguments (`ARGV[i]`).
    /// - Returns: The script's reply. An error reply is thrown.
    @discardableResult
    public func evaluate(
        _ script: RedisScript,
        keys: [any RedisArgumentConvertible] = [],
        arguments: [any RedisArgumentConvertible] = []
    ) async throws(RedisError) -> RedisValue {
        let tail: [any RedisArgumentConvertible] = [keys.count] + keys + arguments
        do throws(RedisError) {
            return try await send(RedisCommand(arguments: ["EVALSHA", script.sha1] + tail))
        } catch  where error.serverErrorPrefix == "NOSCRIPT" {
            return try await send(RedisCommand(arguments: ["EVAL", script.source] + tail))
        }
    }

    /// Runs a script, then `WAIT <replicas> <timeout>` in the same write on the same connection, so the count
    /// covers exactly this script's writes (and everything this connection wrote before). One round trip, plus the
    /// wait.
    ///
    /// - Parameters:
    ///   - script: The script.
    ///   - keys: The keys it touches.
    ///   - arguments: Its other arguments.
    ///   - replicas: How many replicas must acknowledge.
    ///   - timeout: How long the server waits for them.
    /// - Returns: The script's reply, and how many replicas acknowledged within the timeout.
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgumentConvertible] = [],
        arguments: [any RedisArgumentConvertible] = [], waitingFor replicas: Int, timeout: Duration
    ) async throws(RedisError) -> (reply: RedisValue, acknowledged: Int) {
        let tail: [any RedisArgumentConvertible] = [keys.count] + keys + arguments
        let wait = RedisCommand("WAIT", replicas, timeout.wholeMillisecondsRoundedUp)
        var replies = try await pipeline([RedisCommand(arguments: ["EVALSHA", script.sha1] + tail), wait])
        if case .error(let message) = replies[0], message.hasPrefix("NOSCRIPT") {
            replies = try await pipeline([RedisCommand(arguments: ["EVAL", script.source] + tail), wait])
        }
        let reply = try replies[0].throwingServerError(context: "EVALSHA")
        guard replies.count == 2, let acknowledged = replies[1].int else {
            throw RedisError(.unexpectedReply, "WAIT answered \(replies.last ?? .null)", context: "WAIT")
        }
        return (reply, acknowledged)
    }

    /// How many replicas the connected master has (`ROLE`), or 0 for a replica or a standalone server.
    public func connectedReplicaCount() async throws(RedisError) -> Int {
        let role = try await send("ROLE").array ?? []
        guard role.first?.string == "master", role.count >= 3 else { return 0 }
        return role[2].array?.count ?? 0
    }

    /// Loads a script into the server's cache (`SCRIPT LOAD`), for example ahead of a pipeline that uses `EVALSHA`.
    public func load(_ script: RedisScript) async throws(RedisError) {
        let reply = try await send("SCRIPT", "LOAD", script.source)
        guard reply.string == script.sha1 else {
            throw RedisError(.unexpectedReply, "SCRIPT LOAD answered \(reply)", context: "SCRIPT LOAD")
        }
    }
}
