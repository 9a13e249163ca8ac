import Foundation
import Synchronization

/// Renders instants in a timezone without `DateFormatter` (whose creation costs more than a whole request here).
enum TimeRendering {
    private static let zones = Mutex<[String: TimeZone]>([:])

    /// The `TimeZone` for an identifier, created once per identifier.
    static func zone(_ identifier: String) -> TimeZone {
        if let cached = zones.withLock({ $0[identifier] }) { return cached }
        let zone = TimeZone(identifier: identifier) ?? TimeZone(identifier: "UTC") ?? .current
        zones.withLock { $0[identifier] = zone }
        return zone
    }

    /// `2026-11-27 14:02:11 UTC+01:00`
    static func render(_ date: Date, in identifier: String) -> String {
        let zone = zone(identifier)
        let offset = zone.secondsFromGMT(for: date)
        let local = Int64(date.timeIntervalSince1970.rounded(.down)) + Int64(offset)
        let days = Int64((Double(local) / 86_400).rounded(.down))
        let secondsOfDay = Int(local - days * 86_400)
        let (year, month, day) = civil(fromDays: days)
        let sign = offset < 0 ? "-" : "+"
        let absolute = abs(offset)
        return "\(year)-\(two(month))-\(two(day)) \(two(secondsOfDay / 3600)):\(two(secondsOfDay / 60 % 60)):\(two(secondsOfDay % 60)) "
            + "UTC\(sign)\(two(absolute / 3600)):\(two(absolute / 60 % 60))"
    }

    private static func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }

    /// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func civil(fromDays days: Int64) -> (Int64, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthPrime + 2) / 5 + 1)
        let month = Int(monthPrime < 10 ? monthPrime + 3 : monthPrime - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
