/// A reply from the server, converted from hiredis' `redisReply` and freed at once.
///
/// hiredis 0.14.1 speaks RESP2 only, so these six cases are every reply there is.
public enum RedisValue: Sendable, Hashable {
    /// A status reply such as `OK` or `PONG`.
    case simpleString(String)
    /// An error reply. `send` throws these as ``RedisError``; they appear as values only inside
    /// pipelines, transactions and arrays.
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A binary-safe bulk string.
    case bulkString([UInt8])
    /// The null bulk string or null array (a missing key, an aborted transaction).
    case null
    /// An array reply.
    case array([RedisValue])
}

extension RedisValue {
    /// The bulk or status string decoded as UTF-8 (invalid sequences repaired), the integer in decimal, else `nil`.
    public var string: String? {
        switch self {
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The raw bytes of a bulk or status string, else `nil`.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The integer, or a bulk string holding a decimal integer, else `nil`.
    public var int: Int? {
        switch self {
        case .integer(let value): Int(exactly: value)
        case .bulkString(let bytes): Int(String(decoding: bytes, as: UTF8.self))
        case .simpleString(let text): Int(text)
        default: nil
        }
    }

    /// The elements of an array reply, else `nil`.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Whether this is the null reply.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Throws the error reply as a ``RedisError``, else returns `self`.
    public func throwingServerError(context: String? = nil) throws(RedisError) -> RedisValue {
        if case .error(let message) = self { throw RedisError(.serverError, message, context: context) }
        return self
    }
}

extension RedisValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .simpleString(let text): "+\(text)"
        case .error(let text): "-\(text)"
        case .integer(let value): "(integer) \(value)"
        case .bulkString(let bytes): "\"\(String(decoding: bytes, as: UTF8.self))\""
        case .null: "(nil)"
        case .array(let elements): "[" + elements.map(\.description).joined(separator: ", ") + "]"
        }
    }
}
