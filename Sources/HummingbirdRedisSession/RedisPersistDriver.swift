#if Hummingbird
import Foundation
public import Hummingbird
public import RedisClient

/// Hummingbird's key/value `PersistDriver` on this package's Redis client: what Hummingbird's own
/// `SessionMiddleware` (and any other `persist` user) stores through, in one line.
///
/// ```swift
/// let persist = RedisPersistDriver(client: client)
/// router.add(middleware: SessionMiddleware(storage: persist))
/// ```
///
/// Each value is one Redis string holding its JSON, under `keyPrefix + key`. An expiry becomes the key's TTL (`PX`),
/// and a `set` without one keeps the TTL the key has (`KEEPTTL`), as the driver contract asks. Every operation is
/// one command, one round trip.
///
/// What this path keeps and drops of the component's guarantees: it keeps Redis as the one source of truth across
/// instances, TTL expiry and the client's pipelining and failure handling. It writes whole values (no delta saves),
/// has no per-user index (no "log out everywhere"), no ID rotation at login, and no per-instance cache; Hummingbird's
/// session IDs are stored as they are. ``RedisSessionMiddleware`` over a `RedisSessionStore` keeps all of those.
public struct RedisPersistDriver: PersistDriver {
    /// The pool the driver sends on.
    public let client: RedisClient
    /// Prepended to every key, so persisted values stay apart from everything else in the database.
    public let keyPrefix: String

    /// Creates a driver.
    ///
    /// - Parameters:
    ///   - client: The pool to send on.
    ///   - keyPrefix: Prepended to every key (default `hb:`).
    public init(client: RedisClient, keyPrefix: String = "hb:") {
        self.client = client
        self.keyPrefix = keyPrefix
    }

    public func create<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        var command: [any RedisArgumentConvertible] = ["SET", keyPrefix + key, try Self.encode(value), "NX"]
        if let expires { command += ["PX", Self.milliseconds(expires)] }
        // `SET ... NX` answers nil when the key exists.
        if case .null = try await client.send(RedisCommand(arguments: command)) { throw PersistError.duplicate }
    }

    public func set<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        var command: [any RedisArgumentConvertible] = ["SET", keyPrefix + key, try Self.encode(value)]
        command += expires.map { ["PX", Self.milliseconds($0)] } ?? ["KEEPTTL"]
        try await client.send(RedisCommand(arguments: command))
    }

    public func get<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> Object? {
        let reply: RedisValue
        do {
            reply = try await client.send("GET", keyPrefix + key)
        } catch  where error.serverErrorPrefix == "WRONGTYPE" {
            throw PersistError.invalidConversion
        }
        return try Self.decode(reply, as: type)
    }

    public func getWithTTL<Object: Codable & Sendable>(
        key: String, as type: Object.Type
    ) async throws -> (object: Object, ttl: Duration?)? {
        let replies = try await client.pipeline([
            RedisCommand("GET", keyPrefix + key), RedisCommand("PTTL", keyPrefix + key),
        ])
        if case .error(let message) = replies.first {
            if message.hasPrefix("WRONGTYPE") { throw PersistError.invalidConversion }
            throw RedisError(.serverError, message, context: "GET")
        }
        guard let value = try Self.decode(replies.first ?? .null, as: type) else { return nil }
        // PTTL: -1 no expiry, -2 gone since the GET (read as no expiry rather than a lost value).
        let ttl = replies.last?.int.flatMap { $0 >= 0 ? Duration.milliseconds($0) : nil }
        return (value, ttl)
    }

    public func remove(key: String) async throws {
        try await client.send("DEL", keyPrefix + key)
    }

    private static func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try JSONEncoder().encode(value))
    }

    private static func decode<Object: Decodable>(_ reply: RedisValue, as type: Object.Type) throws -> Object? {
        guard let bytes = reply.bytes else { return nil }
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw PersistError.invalidConversion
        }
    }

    /// Whole milliseconds, at least 1: Redis refuses `PX 0`, and a tiny positive expiry must not become none.
    private static func milliseconds(_ duration: Duration) -> Int64 {
        max(1, Int64((duration / .milliseconds(1)).rounded(.up)))
    }
}
#endif  // Hummingbird
