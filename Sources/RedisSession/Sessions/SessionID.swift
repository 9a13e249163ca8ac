/// A session identifier: 32 bytes from the system's cryptographically secure random source, written as
/// base64url without padding (43 characters), whose first three characters are a slot tag.
///
/// The tag puts every key of one user in one Redis Cluster hash slot: a signed-in user's sessions, their index and
/// their settings record. For a signed-in session it is derived from the user ID (18 bits of its SHA-256, which says
/// little about the user), for an anonymous one it is random; the other 238 bits are always random.
///
/// Redis never holds the ID itself: a session is stored under ``storageName``, the tag and the SHA-256 of the whole
/// ID, so a reader of Redis (a replica, a backup, `MONITOR`) holds no usable cookie.
///
/// Parsing is strict: a cookie value that is not exactly that shape (length, alphabet, canonical final character)
/// is rejected without any Redis call, so garbage cookies cost nothing and cannot reach a key name.
public struct SessionID: Sendable, Hashable, CustomStringConvertible {
    /// The 43-character base64url text: the cookie value. It appears in no Redis key, value or log line.
    public let text: String
    /// `{T}H`: the slot tag in braces (a Redis Cluster hash tag) and the base64url SHA-256 of ``text``. The name of
    /// the session at rest, in key names, the user's index and the session cache.
    public let storageName: String

    /// The length of the text form.
    public static let textLength = 43
    /// The length of the slot tag at the start of the text.
    public static let tagLength = 3

    /// A new random session ID for an anonymous session: random tag.
    public init() {
        self.init(tag: nil)
    }

    /// A new random session ID for a signed-in user: the tag is the user's (``tag(forUser:)``), so the session
    /// shares the slot of the user's index and settings.
    public init(userID: String) {
        self.init(tag: Self.tag(forUser: userID))
    }

    /// A new random session ID with the given tag (or a random one), so a regenerated session stays in its slot.
    init(tag: Substring?) {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) on Linux, arc4random on Darwin: a CSPRNG
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in stride(from: 0, to: 32, by: 8) {
            let word = generator.next() as UInt64
            for offset in 0..<8 { bytes[index + offset] = UInt8(truncatingIfNeeded: word >> (offset * 8)) }
        }
        var text = Base64URL.encode(bytes)
        if let tag, tag.utf8.count == Self.tagLength, tag.utf8.allSatisfy(Base64URL.isAlphabet) {
            // Three characters are exactly the first 18 bits, so the text stays canonical.
            text = String(tag) + text.dropFirst(Self.tagLength)
        }
        self.init(validated: text)
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
        guard Base64URL.isCanonical32Bytes(utf8) else { return nil }
        self.init(validated: String(decoding: utf8, as: UTF8.self))
    }

    private init(validated text: String) {
        self.text = text
        var copy = text
        // `{`, the tag, `}`, then the digest in base64url: written in place, as this runs on every request.
        self.storageName = copy.withUTF8 { utf8 in
            String(unsafeUninitializedCapacity: Self.tagLength + 2 + 43) { name in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digest in
                    SHA256.hash(UnsafeRawBufferPointer(utf8), into: UnsafeMutableRawBufferPointer(digest))
                    name[0] = UInt8(ascii: "{")
                    for index in 0..<Self.tagLength { name[index + 1] = utf8[index] }
                    name[Self.tagLength + 1] = UInt8(ascii: "}")
                    let written = Base64URL.encode(
                        UnsafeBufferPointer(digest),
                        into: UnsafeMutableBufferPointer(rebasing: name[(Self.tagLength + 2)...]))
                    return Self.tagLength + 2 + written
                }
            }
        }
    }

    /// The slot tag: the first three characters.
    public var tag: Substring { text.prefix(Self.tagLength) }

    /// The handle that names this session in ``SessionSummary`` and ``SessionStore/destroy(handle:userID:)``.
    public var handle: SessionHandle { SessionHandle(validated: String(storageName.dropFirst(Self.tagLength + 2))) }

    /// The slot tag of a user: three base64url characters (18 bits) of the SHA-256 of the user ID.
    public static func tag(forUser userID: String) -> Substring {
        Base64URL.encode(Array(SHA256.digest(userID.utf8).prefix(3))).prefix(tagLength)
    }

    /// A shortened, non-reversible form for logs and debugging: never log a whole session ID.
    public var description: String { "SessionID(\(text.prefix(4))…)" }

    public static func == (lhs: SessionID, rhs: SessionID) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

/// An opaque name for one of a user's sessions that is not its ID: the base64url SHA-256 of the ID.
///
/// ``SessionStore/sessions(userID:)`` lists sessions by handle, so a "sign out that device" button can name a
/// session without the page, the application or Redis ever holding another device's cookie. A handle cannot be
/// turned back into the session ID.
public struct SessionHandle: Sendable, Hashable, CustomStringConvertible {
    /// The 43-character base64url text.
    public let text: String

    /// Parses a handle submitted back by a form.
    ///
    /// - Returns: `nil` unless it is exactly 43 base64url characters encoding 32 bytes canonically.
    public init?(_ text: some StringProtocol) {
        var copy = String(text)
        guard copy.withUTF8({ Base64URL.isCanonical32Bytes($0) }) else { return nil }
        self.text = copy
    }

    init(validated text: String) { self.text = text }

    public var description: String { "SessionHandle(\(text.prefix(6))…)" }
}

enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes `bytes` into `output`, which must hold `(bytes.count * 4 + 2) / 3` bytes; returns how many it wrote.
    static func encode(_ bytes: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var written = 0
        var index = 0
        func put(_ chunk: UInt32, _ shift: UInt32) {
            output[written] = alphabet[Int(chunk >> shift & 63)]
            written += 1
        }
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            put(chunk, 18)
            put(chunk, 12)
            put(chunk, 6)
            put(chunk, 0)
            index += 3
        }
        let remaining = bytes.count - index
        if remaining == 1 {
            let chunk = UInt32(bytes[index]) << 16
            put(chunk, 18)
            put(chunk, 12)
        } else if remaining == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            put(chunk, 18)
            put(chunk, 12)
            put(chunk, 6)
        }
        return written
    }

    static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { input in
            String(unsafeUninitializedCapacity: (input.count * 4 + 2) / 3) { encode(input, into: $0) }
        }
    }

    static func isAlphabet(_ byte: UInt8) -> Bool { value(of: byte) != nil }

    /// Whether `utf8` is exactly 43 base64url characters encoding 32 bytes canonically: 43 characters carry 258
    /// bits, so the last character's low two bits must be zero.
    static func isCanonical32Bytes(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        guard utf8.count == 43, utf8.allSatisfy(isAlphabet) else { return false }
        guard let last = utf8.last, let value = value(of: last) else { return false }
        return value & 0b11 == 0
    }

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
