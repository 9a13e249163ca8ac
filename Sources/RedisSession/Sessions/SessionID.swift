/// A session identifier: 32 bytes from the system's cryptographically secure random source, written as
/// base64url without padding (43 characters).
///
/// Parsing is strict: a cookie value that is not exactly that shape (length, alphabet, canonical final character)
/// is rejected without any Redis call, so garbage cookies cost nothing and cannot reach a key name.
public struct SessionID: Sendable, Hashable, CustomStringConvertible {
    /// The 43-character base64url text, as it appears in the cookie and in Redis keys.
    public let text: String

    /// The length of the text form.
    public static let textLength = 43

    /// A new random session ID.
    public init() {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) on Linux, arc4random on Darwin: a CSPRNG
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in stride(from: 0, to: 32, by: 8) {
            let word = generator.next() as UInt64
            for offset in 0..<8 { bytes[index + offset] = UInt8(truncatingIfNeeded: word >> (offset * 8)) }
        }
        self.text = Base64URL.encode(bytes)
    }

    /// Parses an incoming cookie value.
    ///
    /// - Parameter text: The cookie value.
    /// - Returns: `nil` unless it is exactly 43 base64url characters encoding 32 bytes canonically.
    public init?(_ text: some StringProtocol) {
        var copy = String(text)
        guard let id = copy.withUTF8({ SessionID(utf8: $0) }) else { return nil }
        self = id
    }

    init?(utf8: UnsafeBufferPointer<UInt8>) {
        guard utf8.count == Self.textLength, utf8.allSatisfy(Base64URL.isAlphabet) else { return nil }
        // 43 characters carry 258 bits; the last character's low two bits must be zero for 32 bytes.
        guard let last = utf8.last, let value = Base64URL.value(of: last), value & 0b11 == 0 else { return nil }
        self.text = String(decoding: utf8, as: UTF8.self)
    }

    /// A shortened, non-reversible form for logs and debugging: never log a whole session ID.
    public var description: String { "SessionID(\(text.prefix(4))…)" }
}

enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int(chunk >> UInt32(shift) & 63)]) }
            index += 3
        }
        let remaining = bytes.count - index
        if remaining == 1 {
            let chunk = UInt32(bytes[index]) << 16
            for shift in [18, 12] { output.append(alphabet[Int(chunk >> UInt32(shift) & 63)]) }
        } else if remaining == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            for shift in [18, 12, 6] { output.append(alphabet[Int(chunk >> UInt32(shift) & 63)]) }
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func isAlphabet(_ byte: UInt8) -> Bool { value(of: byte) != nil }

    static func value(of byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
