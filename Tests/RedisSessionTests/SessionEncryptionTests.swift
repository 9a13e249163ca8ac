import Foundation
import Testing

@testable import RedisSession

/// The sealed form of one value, without a server: every kind of bad data is a `corruptSession`, never a crash.
@Suite struct SessionEncryptionTests {
    let old = try! SessionEncryption.Key(id: "2026-11", bytes: Array(repeating: 7, count: 32))
    let new = try! SessionEncryption.Key(id: "2026-12", bytes: (0..<32).map { UInt8($0) })
    let name = SessionID().storageName

    func isCorrupt(_ body: () throws -> Void) -> Bool {
        do {
            try body()
            return false
        } catch let error as SessionError {
            return error.code == .corruptSession
        } catch {
            return false
        }
    }

    @Test func aValueRoundTripsAndEachSealIsFresh() throws {
        let encryption = try SessionEncryption(keys: [new])
        let value = Array("{\"cart\":[1,2,3]}".utf8)
        let first = try SealedValue.seal(value, field: "a:cart", storageName: name, key: new)
        let second = try SealedValue.seal(value, field: "a:cart", storageName: name, key: new)
        #expect(first != second, "a fresh nonce per value")
        #expect(first.count == value.count + 2 + 7 + 12 + 16)
        #expect(!first.contains(subsequence: value), "no plaintext in the sealed bytes")
        let opened = try SealedValue.open(first, field: "a:cart", storageName: name, encryption: encryption)
        #expect(opened.value == value && opened.isCurrent)
        let empty = try SealedValue.seal([], field: "l:agent", storageName: name, key: new)
        #expect(try SealedValue.open(empty, field: "l:agent", storageName: name, encryption: encryption).value == [])
        #expect(SealedValue.keyID(of: first) == "2026-12")
    }

    /// A known answer, computed by another AES-GCM implementation (Python's `cryptography`): the format is exactly
    /// the documented one, and a value another tool sealed opens here.
    @Test func aValueSealedElsewhereOpens() throws {
        let hex = "01016b000102030405060708090a0bd3c3f94a4f248abc738a2ccb986dd90594fcb680ab"
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(try #require(UInt8(hex[index..<next], radix: 16)))
            index = next
        }
        let encryption = try SessionEncryption(keys: [try SessionEncryption.Key(id: "k", bytes: Array(repeating: 1, count: 32))])
        #expect(try encryption.open(bytes, field: "a:x", storageName: "{abc}fuzz") == Array("hello".utf8))
    }

    /// The field and the session are authenticated with the value: it cannot be moved to another of either.
    @Test func aValueIsBoundToItsFieldAndItsSession() throws {
        let encryption = try SessionEncryption(keys: [new])
        let sealed = try SealedValue.seal(Array("admin".utf8), field: "a:role", storageName: name, key: new)
        #expect(isCorrupt { _ = try SealedValue.open(sealed, field: "a:plan", storageName: name, encryption: encryption) })
        #expect(
            isCorrupt {
                _ = try SealedValue.open(
                    sealed, field: "a:role", storageName: SessionID().storageName, encryption: encryption)
            })
    }

    /// The first key encrypts, every key decrypts; a value under an older key reads, and says it is not current.
    @Test func rotationReadsOldValuesAndARemovedKeyNamesItself() throws {
        let sealedOld = try SealedValue.seal(Array("x".utf8), field: "a:k", storageName: name, key: old)
        let rotating = try SessionEncryption(keys: [new, old])
        let opened = try SealedValue.open(sealedOld, field: "a:k", storageName: name, encryption: rotating)
        #expect(opened.value == Array("x".utf8) && !opened.isCurrent)
        let removed = try SessionEncryption(keys: [new])
        do {
            _ = try SealedValue.open(sealedOld, field: "a:k", storageName: name, encryption: removed)
            Issue.record("a value under a removed key opened")
        } catch {
            #expect(error.code == .corruptSession)
            #expect(error.message.contains("'2026-11'"), "the log names the key: \(error.message)")
        }
    }

    /// Every single flipped bit, every truncation, an unknown key ID and a value too short: `corruptSession`.
    @Test func everyKindOfBadDataIsCorruptNeverACrash() throws {
        let encryption = try SessionEncryption(keys: [new, old])
        let sealed = try SealedValue.seal(Array(repeating: 0x41, count: 64), field: "a:v", storageName: name, key: new)
        for index in sealed.indices {
            for bit in 0..<8 {
                var flipped = sealed
                flipped[index] ^= UInt8(1 << bit)
                let opened = try? SealedValue.open(flipped, field: "a:v", storageName: name, encryption: encryption)
                // A flip in the key ID can only land on another configured key's name by accident; it still fails.
                #expect(opened == nil, "a flipped bit at \(index).\(bit) decrypted")
            }
        }
        for length in 0..<sealed.count {
            #expect(isCorrupt {
                _ = try SealedValue.open(Array(sealed.prefix(length)), field: "a:v", storageName: name, encryption: encryption)
            }, "truncated to \(length)")
        }
        var unknown = sealed
        unknown.replaceSubrange(2..<9, with: Array("2099-01".utf8))
        #expect(isCorrupt { _ = try SealedValue.open(unknown, field: "a:v", storageName: name, encryption: encryption) })
        #expect(isCorrupt { _ = try SealedValue.open([0x01, 0], field: "a:v", storageName: name, encryption: encryption) })
        #expect(isCorrupt { _ = try SealedValue.open([0x01, 200, 1, 2], field: "a:v", storageName: name, encryption: encryption) })
    }

    /// A value stored before encryption was turned on is unreadable data, unless the deployment says it is migrating.
    @Test func plaintextIsRefusedUnlessMigrating() throws {
        let strict = try SessionEncryption(keys: [new])
        #expect(isCorrupt { _ = try SealedValue.open(Array("\"UTC\"".utf8), field: "a:tz", storageName: name, encryption: strict) })
        let migrating = try SessionEncryption(keys: [new], acceptsPlaintext: true)
        let opened = try SealedValue.open(Array("\"UTC\"".utf8), field: "a:tz", storageName: name, encryption: migrating)
        #expect(opened.value == Array("\"UTC\"".utf8) && !opened.isCurrent)
    }

    /// `SESSION_KEYS`: `id:base64` pairs; a bad entry is named, a key's bytes never are.
    @Test func keysParseFromTheEnvironmentsFormat() throws {
        let first = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let second = Data(repeating: 9, count: 32).base64EncodedString()
        let parsed = try SessionEncryption(parsing: "k2:\(first), k1:\(second)")
        #expect(parsed.keys.map(\.id) == ["k2", "k1"])
        #expect(parsed.current.bytes == (0..<32).map { UInt8($0) })
        #expect(!"\(parsed.keys[0])".contains(first) && "\(parsed.keys[0])".contains("k2"))
        for bad in ["", "k1", "k1:not base64!", "k1:\(Data(count: 16).base64EncodedString())", "k 1:\(first)",
            "k1:\(first),k1:\(second)", ":\(first)", String(repeating: "k", count: 33) + ":\(first)"]
        {
            do {
                _ = try SessionEncryption(parsing: bad)
                Issue.record("'\(bad)' parsed")
            } catch {
                #expect(error.code == .invalidValue, "\(bad)")
                #expect(!error.message.contains(first) && !error.message.contains(second), "a key in the message")
            }
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
