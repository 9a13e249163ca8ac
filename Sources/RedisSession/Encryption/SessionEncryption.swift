import Foundation

/// The keys that encrypt session values at rest: every attribute value and every label, with AES-256-GCM.
///
/// The first key encrypts; every key in the list decrypts. To rotate, put the new key first and keep the old one
/// second: values under the old key are still read, and the next save of each session writes all of its values
/// under the new key, in the same write. Once the sessions written before the rotation are re-saved or gone (their
/// absolute lifetime at most), drop the old key; ``EncryptionKeyCensus`` tells how many stored
/// values each key still holds.
///
/// What stays readable is what the scripts need: the user ID, the timestamps and the version. A value is bound to
/// its field and its session (both are authenticated with it), so it cannot be moved to another attribute or another
/// session. A value that does not decrypt (a removed key, a changed byte, a value too short) makes the session
/// unreadable: the visitor is anonymous, and the log names the key.
///
/// ```swift
/// let encryption = try SessionEncryption(parsing: ProcessInfo.processInfo.environment["SESSION_KEYS"] ?? "")
/// let configuration = SessionStoreConfiguration(encryption: encryption)
/// ```
///
/// Keys come from the environment or a file, never from a URL: a URL ends up in logs and process lists.
public struct SessionEncryption: Sendable, Hashable {
    /// One 32-byte AES-256 key and the ID stored with every value it encrypts.
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        /// 1 to 32 characters of `A-Z a-z 0-9 _ -`, stored in the clear beside each value.
        public let id: String
        let bytes: [UInt8]

        /// A key.
        ///
        /// - Throws: ``SessionErrorCode/invalidValue`` when the ID is empty, too long or has other characters, or
        ///   the key is not 32 bytes.
        public init(id: String, bytes: [UInt8]) throws(SessionError) {
            guard (1...32).contains(id.utf8.count), id.utf8.allSatisfy(Self.isIDByte) else {
                throw SessionError(
                    .invalidValue, "an encryption key ID is 1 to 32 of A-Z a-z 0-9 _ -, not '\(id.prefix(40))'")
            }
            guard bytes.count == 32 else {
                throw SessionError(
                    .invalidValue, "encryption key '\(id)' has \(bytes.count) bytes; AES-256 needs 32")
            }
            self.id = id
            self.bytes = bytes
        }

        /// The ID only: a key's bytes never appear in a description or a log.
        public var description: String { "SessionEncryption.Key(\(id))" }

        static func isIDByte(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-")
        }
    }

    /// The keys: the first encrypts, all decrypt.
    public let keys: [Key]
    /// Whether a value stored before encryption was turned on is still read (and written encrypted at the
    /// session's next save). Default `false`: a plaintext value is then unreadable data. Turn it on for the
    /// absolute lifetime after enabling encryption on a running deployment, then off.
    public var acceptsPlaintext: Bool

    /// Encryption with `keys`, the first one encrypting.
    ///
    /// - Throws: ``SessionErrorCode/invalidValue`` when the list is empty or two keys share an ID.
    public init(keys: [Key], acceptsPlaintext: Bool = false) throws(SessionError) {
        guard !keys.isEmpty else { throw SessionError(.invalidValue, "session encryption needs at least one key") }
        guard Set(keys.map(\.id)).count == keys.count else {
            throw SessionError(.invalidValue, "two session encryption keys share an ID")
        }
        self.keys = keys
        self.acceptsPlaintext = acceptsPlaintext
    }

    /// Parses `id:base64,id:base64,...` (the demo's `SESSION_KEYS`): each key is 32 bytes in standard base64;
    /// `openssl rand -base64 32` makes one.
    ///
    /// - Throws: ``SessionErrorCode/invalidValue`` naming the entry that is not a key (never its bytes).
    public init(parsing text: String, acceptsPlaintext: Bool = false) throws(SessionError) {
        var keys: [Key] = []
        for (index, entry) in text.split(separator: ",").enumerated() {
            let trimmed = entry.trimmingCharacters(in: .whitespaces)
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw SessionError(.invalidValue, "session key \(index + 1) is not id:base64")
            }
            let id = String(trimmed[..<colon])
            guard let data = Data(base64Encoded: String(trimmed[trimmed.index(after: colon)...])) else {
                throw SessionError(.invalidValue, "session key '\(id.prefix(32))' is not valid base64")
            }
            keys.append(try Key(id: id, bytes: Array(data)))
        }
        try self.init(keys: keys, acceptsPlaintext: acceptsPlaintext)
    }

    /// The key that encrypts.
    var current: Key { keys[0] }

    /// Encrypts one value as the store writes it: under the current key, bound to `field` (the hash field, such as
    /// `a:cart`) and `storageName` (``SessionID/storageName``). For tools and measurements; the store calls it
    /// itself.
    public func seal(_ value: [UInt8], field: String, storageName: String) throws(SessionError) -> [UInt8] {
        try SealedValue.seal(value, field: field, storageName: storageName, key: current)
    }

    /// The key ID a stored value carries in the clear, or `nil` for a value that is not encrypted: what
    /// ``EncryptionKeyCensus`` counts, readable without any key.
    public static func keyID(ofStored value: [UInt8]) -> String? { SealedValue.keyID(of: value) }

    /// Decrypts one stored value of `field` of the session stored as `storageName`.
    ///
    /// - Throws: ``SessionErrorCode/corruptSession`` when it does not decrypt under any key.
    public func open(_ stored: [UInt8], field: String, storageName: String) throws(SessionError) -> [UInt8] {
        try SealedValue.open(stored, field: field, storageName: storageName, encryption: self).value
    }

    /// The key named `id`, and whether it is the current one.
    func key(id: ArraySlice<UInt8>) -> (key: Key, isCurrent: Bool)? {
        for (index, key) in keys.enumerated() where key.id.utf8.elementsEqual(id) {
            return (key, index == 0)
        }
        return nil
    }
}
