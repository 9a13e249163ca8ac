import Foundation
import Synchronization

/// Renders instants in a timezone without `DateFormatter` (whose creation costs more than a whole request here).
enum TimeRendering {
    /// A zone and the offsets it was asked for, each with the span of time it holds for.
    private struct Zone {
        let zone: TimeZone
        /// At most ``remembered`` spans, newest last: a page shows the present, a session's start and next new year.
        var spans: [(from: Double, until: Double, offset: Int)] = []
    }

    private static let zones = Mutex<[String: Zone]>([:])
    private static let remembered = 4
    /// The longest span an offset is reused for, so a rule change that Foundation does not report as a daylight
    /// saving transition shows within the hour.
    private static let longestSpan = 3600.0

    /// The `TimeZone` for an identifier, created once per identifier.
    static func zone(_ identifier: String) -> TimeZone {
        if let cached = zones.withLock({ $0[identifier]?.zone }) { return cached }
        let zone = TimeZone(identifier: identifier) ?? TimeZone(identifier: "UTC") ?? .current
        zones.withLock { zones in
            if zones[identifier] == nil { zones[identifier] = Zone(zone: zone) }
        }
        return zone
    }

    /// The zone's offset from UTC at `date`, in seconds. Foundation's answer is remembered from `date` until the
    /// zone's next transition (at most an hour): asking it costs more than the rest of rendering the time.
    static func offset(of identifier: String, at date: Date) -> Int {
        let instant = date.timeIntervalSince1970
        let known = zones.withLock { zones in
            zones[identifier]?.spans.first { $0.from <= instant && instant < $0.until }?.offset
        }
        if let known { return known }
        let zone = zone(identifier)
        let offset = zone.secondsFromGMT(for: date)
        let transition = zone.nextDaylightSavingTimeTransition(after: date)?.timeIntervalSince1970 ?? .infinity
        let span = (from: instant, until: min(transition, instant + longestSpan), offset: offset)
        zones.withLock { zones in
            guard var entry = zones[identifier] else { return }
            entry.spans.append(span)
            if entry.spans.count > remembered { entry.spans.removeFirst() }
            zones[identifier] = entry
        }
        return offset
    }

    /// `2026-11-27 14:02:11 UTC+01:00`
    static func render(_ date: Date, in identifier: String) -> String {
        render(date, offset: offset(of: identifier, at: date))
    }

    /// `2026-11-27 14:02:11 UTC+01:00`, at a known offset from UTC.
    static func render(_ date: Date, offset: Int) -> String {
        let local = Int64(date.timeIntervalSince1970.rounded(.down)) + Int64(offset)
        let days = Int64((Double(local) / 86_400).rounded(.down))
        let secondsOfDay = Int(local - days * 86_400)
        let (year, month, day) = civil(fromDays: days)
        let absolute = abs(offset)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        out.append(contentsOf: String(year).utf8)
        out.append(UInt8(ascii: "-"))
        appendTwoDigits(month, to: &out)
        out.append(UInt8(ascii: "-"))
        appendTwoDigits(day, to: &out)
        out.append(UInt8(ascii: " "))
        appendTwoDigits(secondsOfDay / 3600, to: &out)
        out.append(UInt8(ascii: ":"))
        appendTwoDigits(secondsOfDay / 60 % 60, to: &out)
        out.append(UInt8(ascii: ":"))
        appendTwoDigits(secondsOfDay % 60, to: &out)
        out.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: "U"), UInt8(ascii: "T"), UInt8(ascii: "C")])
        out.append(offset < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
        appendTwoDigits(absolute / 3600, to: &out)
        out.append(UInt8(ascii: ":"))
        appendTwoDigits(absolute / 60 % 60, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    private static func appendTwoDigits(_ value: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value / 10 % 10))
        out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value % 10))
    }

    /// The UTC calendar year of an instant.
    static func utcYear(of date: Date) -> Int64 {
        civil(fromDays: Int64((date.timeIntervalSince1970 / 86_400).rounded(.down))).0
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let monthIndex = Int64(month > 2 ? month - 3 : month + 9)
        let dayOfYear = (153 * monthIndex + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

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
