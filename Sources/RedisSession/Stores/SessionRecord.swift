import Foundation
import RedisClient

/// The stored form of a session, spelled once: the hash fields, what a save writes and removes, and how a hash read
/// back becomes a ``Session``.
///
/// | field | holds |
/// | --- | --- |
/// | `_c` | created, milliseconds since 1970 (server time); a hash without it is not a session |
/// | `_t` | last touch, milliseconds (server time) |
/// | `_v` | version: how many saves the session has seen |
/// | `_u` | the signed-in user; absent when anonymous |
/// | `a:<key>` | an attribute: its JSON value |
/// | `l:<name>` | a label (what the application records about the device) |
///
/// The Lua scripts (``SessionScripts``), the transaction of a plain save and the decoder of `HGETALL` all take their
/// names from here, so a new field is added in one place.
enum SessionRecord {
    /// The metadata fields, which the scripts read and write.
    enum Metadata: String, CaseIterable {
        case created = "_c"
        case touched = "_t"
        case version = "_v"
        case user = "_u"

        /// The field name as a Lua string literal, for a script's source.
        var lua: String { "'\(rawValue)'" }
    }

    static let attributePrefix = "a:"
    static let labelPrefix = "l:"

    static func field(attribute key: String) -> String { attributePrefix + key }
    static func field(label name: String) -> String { labelPrefix + name }

    /// The fields a save of `session` writes besides the metadata: its changed attributes, and every label when the
    /// labels changed (a label set is small, and written whole). With `encryption`, each value is sealed for its
    /// field and for `storageName`, the name the session is stored under.
    static func writes(
        of session: Session, encryption: SessionEncryption? = nil, storageName: String = ""
    ) throws(SessionError) -> [(field: String, value: [UInt8])] {
        var fields = session.changedKeys.sorted().map {
            (field: field(attribute: $0), value: session.attributes[$0] ?? [])
        }
        if session.labelsChanged {
            fields += session.labels.sorted { $0.key < $1.key }.map {
                (field: field(label: $0.key), value: Array($0.value.utf8))
            }
        }
        guard let encryption else { return fields }
        for index in fields.indices {
            fields[index].value = try SealedValue.seal(
                fields[index].value, field: fields[index].field, storageName: storageName, key: encryption.current)
        }
        return fields
    }

    /// The fields a save of `session` removes: its removed attributes and removed labels.
    static func removals(of session: Session) -> [String] {
        session.removedKeys.sorted().map { field(attribute: $0) }
            + session.removedLabels.sorted().map { field(label: $0) }
    }

    /// The session a `HGETALL` of `id`'s hash describes; `nil` when the hash carries no creation time (a fragment
    /// that a save racing a destroy left, or no hash at all).
    ///
    /// A session with a value under an older key (or stored before encryption) comes back with every attribute and
    /// label marked changed: its next save writes them all under the current key.
    static func decode(
        id: SessionID, fields: [RedisValue], encryption: SessionEncryption? = nil
    ) throws(SessionError) -> Session? {
        let stored = try Fields(fields, encryption: encryption, storageName: id.storageName)
        guard stored.hasCreated else { return nil }
        guard let created = stored.created, let touched = stored.touched else {
            throw SessionError(.corruptSession, "the session hash has unreadable metadata")
        }
        var session = Session(
            id: id, userID: stored.user, createdAt: date(milliseconds: created),
            lastSeenAt: date(milliseconds: touched),
            version: stored.version, attributes: stored.attributes, labels: stored.labels)
        if stored.needsReencryption { session.markEverythingChanged() }
        return session
    }

    /// A session hash as `HGETALL` returns it.
    ///
    /// Runs on every load, so it works on bytes: numbers are parsed in place, and a field's kind is told from its
    /// first bytes.
    struct Fields {
        var attributes: [String: [UInt8]] = [:]
        var labels: [String: String] = [:]
        var created: Int?
        var touched: Int?
        var version = 0
        var user: String?
        var hasCreated = false
        /// Whether a value was under an older key, or in the clear.
        var needsReencryption = false

        /// Reads a hash; with `encryption`, every attribute value and label is decrypted for the session stored as
        /// `storageName`. `labelsOnly` skips the attributes (the device list shows labels only).
        init(
            _ fields: [RedisValue], encryption: SessionEncryption? = nil, storageName: String = "",
            labelsOnly: Bool = false
        ) throws(SessionError) {
            guard fields.count % 2 == 0 else {
                throw SessionError(.corruptSession, "the session hash has an odd shape")
            }
            attributes.reserveCapacity(fields.count / 2)
            var index = 0
            while index < fields.count {
                defer { index += 2 }
                guard case .bulkString(let name) = fields[index], case .bulkString(let value) = fields[index + 1]
                else {
                    throw SessionError(.corruptSession, "the session hash holds a non-string field")
                }
                if name.count > attributeBytes.count, name.starts(with: attributeBytes) {
                    guard !labelsOnly else { continue }
                    attributes[String(decoding: name[attributeBytes.count...], as: UTF8.self)] = try open(
                        value, name, encryption, storageName)
                } else if name.count > labelBytes.count, name.starts(with: labelBytes) {
                    labels[String(decoding: name[labelBytes.count...], as: UTF8.self)] = String(
                        decoding: try open(value, name, encryption, storageName), as: UTF8.self)
                } else if let metadata = metadataByName[name] {
                    switch metadata {
                    case .created:
                        hasCreated = true
                        created = parseInteger(value)
                    case .touched: touched = parseInteger(value)
                    case .version: version = parseInteger(value) ?? 0
                    case .user: user = String(decoding: value, as: UTF8.self)
                    }
                }
            }
        }

        /// A stored value as the application wrote it.
        private mutating func open(
            _ value: [UInt8], _ name: [UInt8], _ encryption: SessionEncryption?, _ storageName: String
        ) throws(SessionError) -> [UInt8] {
            guard let encryption else { return value }
            let opened = try SealedValue.open(
                value, field: String(decoding: name, as: UTF8.self), storageName: storageName, encryption: encryption)
            if !opened.isCurrent { needsReencryption = true }
            return opened.value
        }

        private static let attributeBytes = Array(attributePrefix.utf8)
        private static let labelBytes = Array(labelPrefix.utf8)
        private static let metadataByName = Dictionary(
            uniqueKeysWithValues: Metadata.allCases.map { (Array($0.rawValue.utf8), $0) })

        private var attributeBytes: [UInt8] { Self.attributeBytes }
        private var labelBytes: [UInt8] { Self.labelBytes }
        private var metadataByName: [[UInt8]: Metadata] { Self.metadataByName }
    }

    /// A non-negative decimal integer, or `nil`.
    static func parseInteger(_ bytes: [UInt8]) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static func date(milliseconds: Int) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    static func milliseconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970 * 1000) }
}
