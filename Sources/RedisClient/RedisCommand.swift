/// A value that can be sent as one binary-safe argument of a Redis command.
public protocol RedisArgumentConvertible: Sendable {
    /// Appends this argument's bytes (without any framing) to `buffer`.
    func appendRedisArgument(to buffer: inout [UInt8])
}

extension String: RedisArgumentConvertible {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Substring: RedisArgumentConvertible {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Array: RedisArgumentConvertible where Element == UInt8 {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
}

extension ArraySlice: RedisArgumentConvertible where Element == UInt8 {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
}

extension Int: RedisArgumentConvertible {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension Int64: RedisArgumentConvertible {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension Double: RedisArgumentConvertible {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

/// One command, encoded once on the caller's side so the connection thread only copies bytes.
///
/// ```swift
/// let command = RedisCommand("SET", key, payloadBytes, "PX", 30_000)
/// ```
public struct RedisCommand: Sendable, Hashable {
    /// The command in the Redis wire protocol (a RESP array of bulk strings).
    var encoded: [UInt8]
    /// The command's name, for error context. Never its arguments: they may hold secrets or session IDs.
    public let name: String

    /// Creates a command from its name and arguments.
    ///
    /// - Parameter arguments: The command name followed by its arguments; each is sent binary-safe.
    public init(_ arguments: any RedisArgumentConvertible...) {
        self.init(arguments: arguments)
    }

    /// Creates a command whose arguments are all strings: the common case, without existential boxes.
    public init(strings arguments: [String]) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 + arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        buffer.append(UInt8(ascii: "*"))
        buffer.append(contentsOf: String(arguments.count).utf8)
        buffer.append(contentsOf: [13, 10])
        for argument in arguments {
            buffer.append(UInt8(ascii: "$"))
            buffer.append(contentsOf: String(argument.utf8.count).utf8)
            buffer.append(contentsOf: [13, 10])
            buffer.append(contentsOf: argument.utf8)
            buffer.append(contentsOf: [13, 10])
        }
        self.encoded = buffer
        self.name = arguments.first.map { Self.commandName(Array($0.utf8)) } ?? ""
    }

    /// Creates a command from an array of arguments, the first being the command name.
    public init(arguments: [any RedisArgumentConvertible]) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 + arguments.count * 24)
        buffer.append(UInt8(ascii: "*"))
        buffer.append(contentsOf: String(arguments.count).utf8)
        buffer.append(contentsOf: [13, 10])
        for value in arguments {
            // Append the bytes first, then slide the `$<length>\r\n` header in front of them: one small memmove
            // instead of a temporary array per argument.
            let start = buffer.count
            value.appendRedisArgument(to: &buffer)
            let header = Array("$\(buffer.count - start)\r\n".utf8)
            buffer.insert(contentsOf: header, at: start)
            buffer.append(contentsOf: [13, 10])
        }
        self.encoded = buffer
        if let first = arguments.first {
            var nameBytes: [UInt8] = []
            first.appendRedisArgument(to: &nameBytes)
            self.name = Self.commandName(nameBytes)
        } else {
            self.name = ""
        }
    }

    /// The command name for error context: ASCII-uppercased bytes, at most 32 (cheap: runs for every command).
    static func commandName(_ bytes: [UInt8]) -> String {
        var name = Array(bytes.prefix(32))
        for index in name.indices where name[index] >= UInt8(ascii: "a") && name[index] <= UInt8(ascii: "z") {
            name[index] -= 32
        }
        return String(decoding: name, as: UTF8.self)
    }
}
