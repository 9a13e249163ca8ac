#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A rate and the CPU time spent per operation while it was measured.
struct Measurement {
    let rate: Double
    let cpuMicroseconds: Double

    /// Measures `body`, which returns operations per second, charging the CPU time of this process.
    static func ofThisProcess(operations: Int, _ body: () async throws -> Double) async rethrows -> Measurement {
        let before = cpuSeconds(children: false)
        let rate = try await body()
        return Measurement(
            rate: rate, cpuMicroseconds: (cpuSeconds(children: false) - before) * 1e6 / Double(operations))
    }

    /// Measures `body`, which runs a child process to completion, charging the CPU time of waited-for children.
    static func ofChildren(operations: Int, _ body: () throws -> Double) rethrows -> Measurement {
        let before = cpuSeconds(children: true)
        let rate = try body()
        return Measurement(
            rate: rate, cpuMicroseconds: (cpuSeconds(children: true) - before) * 1e6 / Double(operations))
    }

    /// CPU seconds (user and system) of this process, or of its waited-for children.
    static func cpuSeconds(children: Bool) -> Double {
        var usage = rusage()
        #if canImport(Glibc)
            getrusage(Int32(truncatingIfNeeded: (children ? RUSAGE_CHILDREN : RUSAGE_SELF).rawValue), &usage)
        #else
            getrusage(children ? RUSAGE_CHILDREN : RUSAGE_SELF, &usage)
        #endif
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }
}
