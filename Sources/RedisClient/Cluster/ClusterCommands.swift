/// The commands inside an encoded payload, each with the slot its keys hash to: what routing on a cluster needs,
/// read from the bytes already encoded for the wire, so the standalone path never pays for it.
struct ClusterCommands: Sendable {
    /// One command of a payload.
    struct Command: Sendable, Equatable {
        /// Its bytes in the payload.
        var range: Range<Int>
        /// Its name, uppercased.
        var name: String
        /// The slot of its keys, or `nil` for a command without keys (it may run on any primary).
        var slot: Int?
    }

    /// A unit that must run on one node in one piece: one command, or `MULTI` ... `EXEC` with everything between.
    struct Unit: Sendable, Equatable {
        /// The commands' indices in ``commands``.
        var commands: Range<Int>
        /// The slot every key in the unit hashes to, or `nil` when it has no keys.
        var slot: Int?
    }

    let commands: [Command]
    let units: [Unit]

    /// Splits a payload of RESP arrays into commands and units.
    ///
    /// - Throws: ``RedisError/Code/invalidCommand`` when one command, or one transaction, has keys in more than one
    ///   slot (`CROSSSLOT` on a cluster, refused before anything is sent).
    init(payload: [UInt8]) throws(RedisError) {
        var parser = Parser(bytes: payload)
        var commands: [Command] = []
        while parser.index < payload.count {
            let start = parser.index
            guard let arguments = parser.array() else {
                throw RedisError(.protocolError, "a payload that is not RESP arrays", context: "cluster routing")
            }
            let name = RedisCommand.commandName(arguments.first.map { Array(payload[$0]) } ?? [])
            let slot = try Self.slot(name: name, arguments: arguments, in: payload)
            commands.append(Command(range: start..<parser.index, name: name, slot: slot))
        }
        self.commands = commands
        var units: [Unit] = []
        var index = 0
        while index < commands.count {
            if commands[index].name == "MULTI", let exec = commands[index...].firstIndex(where: { $0.name == "EXEC" }) {
                let slots = Set(commands[index...exec].compactMap(\.slot))
                guard slots.count <= 1 else {
                    throw RedisError(
                        .invalidCommand, "a transaction's keys must share one hash slot on a cluster (CROSSSLOT)",
                        context: "MULTI")
                }
                units.append(Unit(commands: index..<(exec + 1), slot: slots.first))
                index = exec + 1
            } else {
                units.append(Unit(commands: index..<(index + 1), slot: commands[index].slot))
                index += 1
            }
        }
        self.units = units
    }

    /// The one slot of a payload whose every command has its only key first (`HGETALL k`, `PTTL k`, `SET k v`),
    /// read without allocating: the store's loads and most commands. `nil` when the payload needs the full cut
    /// (a transaction, a script, a key-less or multi-key command, or keys in several slots).
    static func singleKeySlot(_ payload: [UInt8]) -> Int? {
        var index = 0
        var slot: Int?
        while index < payload.count {
            guard payload[index] == UInt8(ascii: "*"), let (count, afterCount) = number(payload, at: index),
                count >= 2, let (nameLength, nameStart) = number(payload, at: afterCount),
                nameStart + nameLength + 2 <= payload.count
            else { return nil }
            // The name packed into one integer (at most 8 letters, uppercased): no allocation, one set lookup.
            guard let name = packedName(payload, nameStart, nameLength), !notFirstKey.contains(name) else {
                return nil
            }
            var position = nameStart + nameLength + 2
            guard let (keyLength, keyStart) = number(payload, at: position),
                keyStart + keyLength + 2 <= payload.count
            else { return nil }
            let keySlot = HashSlot.value(of: payload[keyStart..<(keyStart + keyLength)])
            if let slot, slot != keySlot { return nil }
            slot = keySlot
            position = keyStart + keyLength + 2
            for _ in 2..<count {
                guard let (length, start) = number(payload, at: position), start + length + 2 <= payload.count else {
                    return nil
                }
                position = start + length + 2
            }
            index = position
        }
        return slot
    }

    /// Commands whose keys are not simply their first argument.
    private static let special: Set<String> = [
        "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", "MSET", "MSETNX",
    ]

    /// Every name of up to 8 letters whose key is not its first argument, packed as ``packedName`` does. A longer
    /// name is not packed at all, so it takes the full cut.
    private static let notFirstKey: Set<UInt64> = Set(
        (keyless.union(allKeys).union(special)).compactMap { name in
            let bytes = Array(name.utf8)
            return packedName(bytes, 0, bytes.count)
        })

    /// Up to 8 bytes of a command name, ASCII-uppercased, in one integer; `nil` for a longer name.
    private static func packedName(_ bytes: [UInt8], _ start: Int, _ length: Int) -> UInt64? {
        guard length <= 8 else { return nil }
        var packed: UInt64 = 0
        for offset in 0..<length {
            var byte = bytes[start + offset]
            if byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") { byte -= 32 }
            packed = packed << 8 | UInt64(byte)
        }
        return packed
    }

    /// The number after a type byte at `start` (`*2\r\n`, `$7\r\n`) and where what follows begins.
    private static func number(_ bytes: [UInt8], at start: Int) -> (Int, Int)? {
        guard start < bytes.count else { return nil }
        var value = 0
        var position = start + 1
        while position < bytes.count, bytes[position] != 13 {
            let digit = Int(bytes[position]) &- 48
            guard (0...9).contains(digit) else { return nil }
            value = value * 10 + digit
            position += 1
        }
        guard position + 1 < bytes.count, bytes[position + 1] == 10 else { return nil }
        return (value, position + 2)
    }

    /// Commands with no key at all: they run on whichever primary the router picks.
    private static let keyless: Set<String> = [
        "PING", "ECHO", "INFO", "ROLE", "WAIT", "CLIENT", "PUBLISH", "SCRIPT", "TIME", "COMMAND", "CLUSTER", "DBSIZE",
        "CONFIG", "MULTI", "EXEC", "DISCARD", "SELECT", "AUTH", "HELLO", "READONLY", "READWRITE", "ASKING", "FLUSHDB",
        "FLUSHALL", "DEBUG", "LASTSAVE", "MEMORY", "SLOWLOG", "LATENCY", "FUNCTION", "RANDOMKEY", "SCAN", "KEYS",
        "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "MONITOR", "QUIT", "RESET", "SAVE", "BGSAVE",
        "BGREWRITEAOF", "SHUTDOWN", "SWAPDB", "UNWATCH",
    ]
    /// Commands whose every argument is a key.
    private static let allKeys: Set<String> = [
        "DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "WATCH", "SINTER", "SUNION", "SDIFF",
    ]

    private static func slot(name: String, arguments: [Range<Int>], in payload: [UInt8]) throws(RedisError) -> Int? {
        if keyless.contains(name) { return nil }
        var keys: [Range<Int>] = []
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard arguments.count >= 3, let count = Int(String(decoding: payload[arguments[2]], as: UTF8.self)),
                count >= 0, arguments.count >= 3 + count
            else { return nil }
            keys = Array(arguments[3..<(3 + count)])
        case "MSET", "MSETNX":
            keys = stride(from: 1, to: arguments.count, by: 2).map { arguments[$0] }
        case _ where allKeys.contains(name):
            keys = Array(arguments.dropFirst())
        default:
            keys = arguments.count > 1 ? [arguments[1]] : []
        }
        var slot: Int?
        for key in keys {
            let keySlot = HashSlot(bytes: payload[key]).value
            if let slot, slot != keySlot {
                throw RedisError(
                    .invalidCommand, "a command's keys must share one hash slot on a cluster (CROSSSLOT)", context: name
                )
            }
            slot = keySlot
        }
        return slot
    }

    /// Reads RESP arrays of bulk strings, as ``RedisCommand`` encodes them.
    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func array() -> [Range<Int>]? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "*"), let count = number(after: index) else {
                return nil
            }
            var arguments: [Range<Int>] = []
            arguments.reserveCapacity(count)
            for _ in 0..<count {
                guard index < bytes.count, bytes[index] == UInt8(ascii: "$"), let length = number(after: index),
                    index + length + 2 <= bytes.count
                else { return nil }
                arguments.append(index..<(index + length))
                index += length + 2
            }
            return arguments
        }

        /// The decimal number after a type byte, up to CRLF; moves past the CRLF.
        private mutating func number(after start: Int) -> Int? {
            var value = 0
            var position = start + 1
            while position < bytes.count, bytes[position] != 13 {
                let digit = Int(bytes[position]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
                position += 1
            }
            guard position + 1 < bytes.count, bytes[position + 1] == 10 else { return nil }
            index = position + 2
            return value
        }
    }
}
