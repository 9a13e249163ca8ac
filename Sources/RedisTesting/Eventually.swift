/// Polls `condition` until it holds or `timeout` passes, for tests that wait on another connection, thread or process.
///
/// - Parameters:
///   - timeout: How long to keep trying (default 5 s).
///   - interval: The pause between two tries (default 2 ms, fine enough for latency bounds of 100 ms).
///   - condition: What to wait for.
/// - Returns: Whether the condition held before the deadline.
public func eventually(
    timeout: Duration = .seconds(5), interval: Duration = .milliseconds(2), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
