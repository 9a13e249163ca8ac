public import Foundation
import RedisSession

/// A change to a user's sessions or settings, published on `<prefix>events` so every instance can react.
///
/// JSON on the wire (schema version 1; unknown fields are ignored, so fields can be added):
///
/// ```json
/// {"v":1,"type":"settings.changed","user":"alice","timezone":"Asia/Tokyo","version":7,"origin":"web-2","at":1795741964337}
/// ```
///
/// This type is the one definition of that format: ``encoded()`` writes it, ``decode(_:)`` reads it, and the
/// settings write that publishes from inside Redis sends the bytes ``encoded()`` makes, split around the version.
public struct SessionEvent: Sendable, Hashable, Decodable {
    /// What happened. A struct over a string so that events of kinds a newer publisher adds still decode (and
    /// are ignored by consumers that do not know them).
    public struct Kind: RawRepresentable, Sendable, Hashable, Decodable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A user signed in; carries the user's timezone and settings version.
        public static let loggedIn = Kind(rawValue: "user.logged_in")
        /// A user's settings changed; carries the new timezone and the bumped version.
        public static let settingsChanged = Kind(rawValue: "settings.changed")
        /// One session was logged out.
        public static let loggedOut = Kind(rawValue: "user.logged_out")
        /// Every session of the user was destroyed ("log out everywhere").
        public static let sessionsRevoked = Kind(rawValue: "sessions.revoked")

        public init(from decoder: any Decoder) throws {
            rawValue = try decoder.singleValueContainer().decode(String.self)
        }

        public var description: String { rawValue }
    }

    /// The schema version this library writes and reads.
    public static let schemaVersion = 1

    /// Schema version (`v`).
    public var schema: Int
    /// What happened.
    public var kind: Kind
    /// The user it concerns.
    public var user: String
    /// The user's timezone, for ``Kind/loggedIn`` and ``Kind/settingsChanged``.
    public var timezone: String?
    /// The user's settings version after the change; orders events per user.
    public var version: Int
    /// The instance that published it.
    public var origin: String
    /// When it was published, in milliseconds since 1970 (the origin's clock).
    public var publishedAtMilliseconds: Int64

    enum CodingKeys: String, CodingKey {
        case schema = "v"
        case kind = "type"
        case user, timezone, version, origin
        case publishedAtMilliseconds = "at"
    }

    /// Creates an event stamped now.
    public init(kind: Kind, user: String, timezone: String? = nil, version: Int, origin: String, at date: Date = Date())
    {
        self.schema = Self.schemaVersion
        self.kind = kind
        self.user = user
        self.timezone = timezone
        self.version = version
        self.origin = origin
        self.publishedAtMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// When it was published.
    public var publishedAt: Date { Date(timeIntervalSince1970: Double(publishedAtMilliseconds) / 1000) }

    /// The JSON payload.
    public func encoded() -> [UInt8] {
        let (head, tail) = encodedAroundVersion()
        return head + Array(String(version).utf8) + tail
    }

    /// The payload in two parts, before and after the version's digits: a script that learns the version only as
    /// it writes (``UserSettingsStore/write(userID:timezone:announcing:)``) publishes `head .. version .. tail`,
    /// which is exactly ``encoded()``.
    func encodedAroundVersion() -> (head: [UInt8], tail: [UInt8]) {
        var head = Array(#"{"v":"#.utf8) + Array(String(schema).utf8)
        head += Array(#","type":"#.utf8) + JSONString.encode(kind.rawValue)
        head += Array(#","user":"#.utf8) + JSONString.encode(user)
        if let timezone { head += Array(#","timezone":"#.utf8) + JSONString.encode(timezone) }
        head += Array(#","version":"#.utf8)
        var tail = Array(#","origin":"#.utf8) + JSONString.encode(origin)
        tail += Array(#","at":"#.utf8) + Array(String(publishedAtMilliseconds).utf8) + [UInt8(ascii: "}")]
        return (head, tail)
    }

    /// Decodes a payload, or says why it is not an event this library can use.
    public static func decode(_ payload: [UInt8]) -> Result<SessionEvent, MalformedEvent> {
        let event: SessionEvent
        do {
            event = try JSONDecoder().decode(SessionEvent.self, from: Data(payload))
        } catch DecodingError.keyNotFound(let key, _) {
            return .failure(MalformedEvent(reason: "missing field '\(key.stringValue)'", payload: payload))
        } catch DecodingError.typeMismatch(_, let context) where !context.codingPath.isEmpty {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return .failure(MalformedEvent(reason: "field '\(field)' has the wrong type", payload: payload))
        } catch {
            return .failure(MalformedEvent(reason: "not a JSON event object", payload: payload))
        }
        guard event.schema == schemaVersion else {
            return .failure(MalformedEvent(reason: "unsupported schema version \(event.schema)", payload: payload))
        }
        guard !event.user.isEmpty, event.version >= 0 else {
            return .failure(MalformedEvent(reason: "empty user or negative version", payload: payload))
        }
        // JSONDecoder reads `1.5e3` or `1500.0` as the integer 1500; a settings version is written by HINCRBY, so
        // anything but plain digits, or a number past what every JSON reader holds exactly, is not one.
        guard event.version <= maximumVersion, Self.versionIsPlainDigits(payload) else {
            return .failure(
                MalformedEvent(reason: "version is not a whole number in 0...\(maximumVersion)", payload: payload))
        }
        return .success(event)
    }

    /// The largest version an event may carry: 2^53 - 1, the largest integer every JSON reader holds exactly.
    public static let maximumVersion = (1 << 53) - 1

    /// Whether the object's top-level `"version"` value is written as plain decimal digits, as HINCRBY's counter is.
    static func versionIsPlainDigits(_ payload: [UInt8]) -> Bool {
        var depth = 0
        var index = 0
        while index < payload.count {
            let byte = payload[index]
            if byte == UInt8(ascii: "\"") {
                // A string: find its end, then see whether it is the top-level key "version".
                let start = index + 1
                index = start
                while index < payload.count && payload[index] != UInt8(ascii: "\"") {
                    index += payload[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard index < payload.count else { return false }
                let isVersionKey = depth == 1 && payload[start..<index].elementsEqual("version".utf8)
                index += 1
                guard isVersionKey else { continue }
                while index < payload.count && [9, 10, 13, 32].contains(payload[index]) { index += 1 }
                guard index < payload.count, payload[index] == UInt8(ascii: ":") else { continue }
                index += 1
                while index < payload.count && [9, 10, 13, 32].contains(payload[index]) { index += 1 }
                var digits = 0
                while index < payload.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(payload[index]) {
                    digits += 1
                    index += 1
                }
                let end = index < payload.count ? payload[index] : 0
                return digits > 0 && [9, 10, 13, 32, UInt8(ascii: ","), UInt8(ascii: "}")].contains(end)
            }
            if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") { depth += 1 }
            if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") { depth -= 1 }
            index += 1
        }
        return false
    }
}

/// A payload on the events channel that is not a usable ``SessionEvent``: counted and skipped, never fatal.
public struct MalformedEvent: Error, Sendable, Hashable {
    /// Why it was rejected.
    public var reason: String
    /// The raw payload.
    public var payload: [UInt8]
}
