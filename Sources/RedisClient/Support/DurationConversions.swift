/// The unit conversions of `Duration` the package needs, in one place.
extension Duration {
    /// Whole nanoseconds of a non-negative duration (negative parts count as zero), to compare with clock readings.
    package var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Milliseconds, with their fraction.
    package var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// Seconds, with their fraction.
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Whole milliseconds for a Redis expiry (`PX`, `PEXPIRE`): at least 1 for a positive duration, so a tiny
    /// positive lifetime never becomes "expire now".
    package var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let value = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return self > .zero ? max(1, value) : value
    }

    /// Whole milliseconds, rounded up, at least 1: a tiny positive timeout never becomes "no timeout" (0) in C.
    package var wholeMillisecondsRoundedUp: Int {
        max(1, Int(milliseconds.rounded(.up)))
    }
}
