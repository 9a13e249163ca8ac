import COpenSSL

/// One value as ``SessionEncryption`` stores it:
///
/// | bytes | holds |
/// | --- | --- |
/// | 1 | `0x01`, the format (no JSON value, and no label the library wrote in the clear, starts with it) |
/// | 1 | `n`, the key ID's length (1 to 32) |
/// | n | the key ID |
/// | 12 | a fresh random nonce |
/// | rest | the AES-256-GCM ciphertext, then its 16-byte tag |
///
/// The additional authenticated data is the hash field's name, a zero byte and the session's stored name
/// (``SessionID/storageName``): a value copied to another field or another session does not decrypt.
enum SealedValue {
    static let format: UInt8 = 0x01
    static let nonceLength = 12
    static let tagLength = 16

    /// The fewest bytes a sealed value can have: an empty plaintext under a one-character key ID.
    static let minimumLength = 2 + 1 + nonceLength + tagLength

    /// Encrypts `value` for `field` of the session stored as `storageName`, under `key`.
    static func seal(
        _ value: [UInt8], field: String, storageName: String, key: SessionEncryption.Key
    ) throws(SessionError) -> [UInt8] {
        let id = Array(key.id.utf8)
        let header = 2 + id.count
        var sealed = [UInt8](repeating: 0, count: header + nonceLength + value.count + tagLength)
        sealed[0] = format
        sealed[1] = UInt8(id.count)
        sealed.replaceSubrange(2..<header, with: id)
        let aad = authenticatedData(field: field, storageName: storageName)
        let written = sealed.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress, crsess_random(base + header, Int32(nonceLength)) == 0 else {
                return -1
            }
            return key.bytes.withUnsafeBufferPointer { keyBytes in
                aad.withUnsafeBufferPointer { aadBytes in
                    value.withUnsafeBufferPointer { plain in
                        crsess_seal(
                            keyBytes.baseAddress, base + header, aadBytes.baseAddress, Int32(aadBytes.count),
                            plain.baseAddress, Int32(plain.count), base + header + nonceLength)
                    }
                }
            }
        }
        guard written == Int32(value.count + tagLength) else {
            throw SessionError(.invalidValue, "OpenSSL could not encrypt a session value")
        }
        return sealed
    }

    /// Decrypts a stored value of `field` of the session stored as `storageName`.
    ///
    /// - Returns: The plaintext, and whether it was under the current key (a plaintext value accepted by
    ///   ``SessionEncryption/acceptsPlaintext`` is not).
    /// - Throws: ``SessionErrorCode/corruptSession`` for a value too short, an unknown key ID, or one that does not
    ///   decrypt (a changed byte, a value moved from another field or session, the wrong key).
    static func open(
        _ stored: [UInt8], field: String, storageName: String, encryption: SessionEncryption
    ) throws(SessionError) -> (value: [UInt8], isCurrent: Bool) {
        guard stored.first == format else {
            if encryption.acceptsPlaintext { return (stored, false) }
            throw SessionError(.corruptSession, "session field '\(printable(field))' is not encrypted")
        }
        guard stored.count >= minimumLength, (1...32).contains(Int(stored[1])),
            stored.count >= 2 + Int(stored[1]) + nonceLength + tagLength
        else {
            throw SessionError(.corruptSession, "session field '\(printable(field))' holds a truncated encrypted value")
        }
        let header = 2 + Int(stored[1])
        let id = stored[2..<header]
        guard let (key, isCurrent) = encryption.key(id: id) else {
            throw SessionError(
                .corruptSession,
                "session field '\(printable(field))' is encrypted with key '\(printable(id))', which is not configured")
        }
        let aad = authenticatedData(field: field, storageName: storageName)
        let sealedLength = stored.count - header - nonceLength
        var plain = [UInt8](repeating: 0, count: sealedLength - tagLength)
        let opened = stored.withUnsafeBufferPointer { storedBytes -> Int32 in
            guard let base = storedBytes.baseAddress else { return -1 }
            return key.bytes.withUnsafeBufferPointer { keyBytes in
                aad.withUnsafeBufferPointer { aadBytes in
                    plain.withUnsafeMutableBufferPointer { out in
                        crsess_open(
                            keyBytes.baseAddress, base + header, aadBytes.baseAddress, Int32(aadBytes.count),
                            base + header + nonceLength, Int32(sealedLength), out.baseAddress)
                    }
                }
            }
        }
        guard opened == Int32(plain.count) else {
            throw SessionError(
                .corruptSession,
                "session field '\(printable(field))' does not decrypt under key '\(key.id)': changed, or moved from "
                    + "another field or session")
        }
        return (plain, isCurrent)
    }

    /// The key ID a stored value names, or `nil` for a value that is not sealed.
    static func keyID(of stored: [UInt8]) -> String? {
        guard stored.count >= minimumLength, stored[0] == format, (1...32).contains(Int(stored[1])),
            stored.count >= 2 + Int(stored[1])
        else { return nil }
        return printable(stored[2..<(2 + Int(stored[1]))])
    }

    private static func authenticatedData(field: String, storageName: String) -> [UInt8] {
        var aad = Array(field.utf8)
        aad.append(0)
        aad.append(contentsOf: storageName.utf8)
        return aad
    }

    /// Stored bytes as they may appear in an error: key-ID characters only, at most 32.
    private static func printable(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.prefix(32).map { SessionEncryption.Key.isIDByte($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    /// A field name as it may appear in an error: visible ASCII only, at most 64 bytes.
    private static func printable(_ field: String) -> String {
        String(decoding: field.utf8.prefix(64).map { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "'") ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}
