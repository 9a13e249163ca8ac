import Foundation
import Dispatch
import Synchronization

/// Runs async work from the checker's synchronous main thread (not a cooperative-pool thread, so waiting on a
/// semaphore here blocks nothing the work needs).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let value = try await body()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    guard let outcome = result.withLock({ $0 }) else { throw HTTPFailure(description: "no result") }
    return try outcome.get()
}

/// Prints a line at once (stdout is a pipe in CI, where `print` would hold lines back until exit).
func say(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
