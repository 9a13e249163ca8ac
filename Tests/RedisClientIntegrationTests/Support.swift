import Foundation
import RedisClient
import RedisTesting
import Synchronization

/// A unique key prefix per test, so tests share one server without seeing each other's keys.
func uniquePrefix(_ test: String = #function) -> String {
    "test:\(UUID().uuidString.prefix(8)):"
}

/// Runs `body` with a client on the shared test server and closes it afterwards.
@discardableResult
func withClient<T>(
    poolSize: Int = 2,
    commandTimeout: Duration = .seconds(2),
    url: String? = nil,
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let target: String
    if let url { target = url } else { target = try await RedisServer.sharedURL() }
    var configuration = try RedisConfiguration(url: target)
    configuration.poolSize = poolSize
    configuration.commandTimeout = commandTimeout
    let client = RedisClient(configuration: configuration)
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw error
    }
}

/// Names of this process's threads (Linux `/proc/self/task/*/comm`).
func threadNames() -> [String] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.compactMap { task in
        (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A value shared between test tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func update<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
