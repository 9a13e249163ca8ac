import Foundation
import Testing

@testable import WebTierApp

/// Times on the pages: the remembered offsets give what Foundation gives, across daylight saving transitions.
@Suite struct TimeRenderingTests {
    /// Europe/Paris went from UTC+01:00 to UTC+02:00 at 2026-03-29 01:00 UTC.
    let transition = Date(timeIntervalSince1970: 1_774_746_000)

    @Test func anOffsetRememberedBeforeATransitionIsNotUsedAfterIt() {
        let before = transition.addingTimeInterval(-1800)
        #expect(TimeRendering.render(before, in: "Europe/Paris") == "2026-03-29 01:30:00 UTC+01:00")
        #expect(TimeRendering.render(before.addingTimeInterval(60), in: "Europe/Paris") == "2026-03-29 01:31:00 UTC+01:00")
        #expect(TimeRendering.render(transition, in: "Europe/Paris") == "2026-03-29 03:00:00 UTC+02:00")
        #expect(
            TimeRendering.render(transition.addingTimeInterval(-1), in: "Europe/Paris")
                == "2026-03-29 01:59:59 UTC+01:00")
    }

    @Test func everyRenderAgreesWithFoundationOverAYearOfInstants() {
        let zones = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns", "UTC"]
        for identifier in zones {
            let zone = TimeZone(identifier: identifier)!
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            // Every 7 hours and 13 minutes through 2026, in an order that jumps back and forth.
            for step in stride(from: 0, to: 1200, by: 1) {
                let seconds = Double((step * 7_919) % 1200) * 26_000
                let date = Date(timeIntervalSince1970: 1_767_225_600 + seconds)
                let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
                let offset = zone.secondsFromGMT(for: date)
                let expected = String(
                    format: "%04d-%02d-%02d %02d:%02d:%02d UTC%@%02d:%02d", parts.year!, parts.month!, parts.day!,
                    parts.hour!, parts.minute!, parts.second!, offset < 0 ? "-" : "+", abs(offset) / 3600,
                    abs(offset) / 60 % 60)
                #expect(TimeRendering.render(date, in: identifier) == expected, "\(identifier) at \(date)")
            }
        }
    }
}
