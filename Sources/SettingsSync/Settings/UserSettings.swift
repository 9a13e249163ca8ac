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

    /// Whether `identifier` is an IANA timezone identifier this system knows: one of ``knownTimezones``, or an
    /// `Area/Location` name the system's tz database resolves (Foundation's list lags behind renames such as
    /// `Asia/Kolkata`). Abbreviations and offsets such as `CET` or `GMT+1` are not accepted: they are not what a
    /// settings form should store.
    public static func isValidTimezone(_ identifier: String) -> Bool {
        if knownTimezoneSet.contains(identifier) { return true }
        let parts = identifier.split(separator: "/", omittingEmptySubsequences: false)
        guard identifier.utf8.count <= 64, parts.count >= 2, areas.contains(String(parts[0])),
            parts.allSatisfy({ !$0.isEmpty }),
            identifier.unicodeScalars.allSatisfy({
                $0.properties.isASCIIHexDigit || ("A"..."Z").contains($0) || ("a"..."z").contains($0)
                    || "/_-+".unicodeScalars.contains($0)
            })
        else { return false }
        return TimeZone(identifier: identifier) != nil
    }

    private static let areas: Set<String> = [
        "Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific",
    ]
}
