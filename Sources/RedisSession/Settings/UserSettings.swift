import Foundation

/// A user's settings as stored in Redis (`<prefix>user:<id>`): the source of truth every instance's cache follows.
public struct UserSettings: Sendable, Hashable {
    /// The IANA timezone identifier.
    public var timezone: String
    /// Bumped atomically with every change; orders events and cache entries.
    public var version: Int

    /// Creates settings.
    public init(timezone: String, version: Int) {
        self.timezone = timezone
        self.version = version
    }

    /// The identifiers ``isValidTimezone(_:)`` accepts: the system's IANA list plus `UTC`.
    public static let knownTimezones: [String] = {
        var identifiers = Set(TimeZone.knownTimeZoneIdentifiers)
        identifiers.insert("UTC")
        return identifiers.sorted()
    }()

    private static let knownTimezoneSet = Set(knownTimezones)

    /// Whether `identifier` is an IANA timezone identifier this system knows (abbreviations and offsets such as
    /// `CET` or `GMT+1` are not accepted: they are not what a settings form should store).
    public static func isValidTimezone(_ identifier: String) -> Bool { knownTimezoneSet.contains(identifier) }
}
