/// The Redis Cluster hash slot of a key: CRC16-CCITT (XMODEM) of the key, or of its hash tag, modulo 16,384.
///
/// A hash tag is the part between the first `{` and the first `}` after it, when that part is not empty; keys with
/// the same tag share a slot, which is what lets a script or a transaction touch several of them on a cluster.
/// This follows the Redis Cluster specification, so `HashSlot("123456789")` is `0x31C3` (12,739), and
/// `HashSlot("{user1000}.following")` equals `HashSlot("{user1000}.followers")`.
public struct HashSlot: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The number of slots in a cluster.
    public static let count = 16_384

    /// The slot, in `0..<16384`.
    public let value: Int

    /// The slot of a key given as text.
    public init(_ key: some StringProtocol) {
        var copy = String(key)
        self = copy.withUTF8 { HashSlot(bytes: $0) }
    }

    /// The slot of a binary key.
    public init(bytes key: some Collection<UInt8>) {
        let bytes = Array(key)
        var hashed = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            hashed = bytes[(open + 1)..<close]
        }
        self.value = Int(Self.crc16(hashed) & 0x3FFF)
    }

    public var description: String { String(value) }

    /// The slot of a key inside a larger buffer, without copying it (the router's hot path).
    static func value(of key: ArraySlice<UInt8>) -> Int {
        var hashed = key
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            hashed = key[(open + 1)..<close]
        }
        return Int(crc16(hashed) & 0x3FFF)
    }

    public static func < (lhs: HashSlot, rhs: HashSlot) -> Bool { lhs.value < rhs.value }

    /// CRC16-CCITT as Redis Cluster uses it: polynomial 0x1021, initial value 0, no reflection (XMODEM).
    static func crc16(_ bytes: some Collection<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}
