import Foundation
import RedisClient
import RedisTesting
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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

/// Steady traffic over keys (on every primary of a cluster), counting what worked and keeping what failed.
final class KeyTraffic: Sendable {
    let done = Atomic<Int>(0)
    let failures = Mutex<[String]>([])
    let stop = Atomic<Bool>(false)
    let worst = Mutex<Duration>(.zero)

    /// The highest value each key's `INCR` was acknowledged with (counting mode).
    let acknowledged = Mutex<[String: Int]>([:])

    /// `INCR` in a loop, remembering what each key was acknowledged as: after a failover every key must hold at
    /// least that, or an acknowledged write was lost.
    func runCounting(_ client: RedisClient, keys: [String], tasks: Int) async {
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var index = task
                    while !self.stop.load(ordering: .relaxed) {
                        let key = keys[index % keys.count]
                        index += tasks
                        do {
                            let value = try await client.send("INCR", key).int ?? 0
                            self.acknowledged.withLock { $0[key] = max($0[key] ?? 0, value) }
                            self.done.add(1, ordering: .relaxed)
                        } catch {
                            self.failures.withLock { $0.append("\(key): \(error)") }
                        }
                    }
                }
            }
        }
    }

    func run(_ client: RedisClient, keys: [String], tasks: Int) async {
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var index = task
                    while !self.stop.load(ordering: .relaxed) {
                        let key = keys[index % keys.count]
                        index += tasks
                        let started = ContinuousClock.now
                        do {
                            try await client.send("SET", key, index)
                            _ = try await client.send("GET", key)
                            self.done.add(1, ordering: .relaxed)
                        } catch {
                            self.failures.withLock { $0.append("\(key): \(error)") }
                        }
                        let took = ContinuousClock.now - started
                        self.worst.withLock { $0 = max($0, took) }
                    }
                }
            }
        }
    }
}

/// A listening loopback socket nobody accepts on: the kernel completes a client's connect, and nothing ever answers.
/// Close `descriptor` when done.
func silentLoopbackListener() -> (descriptor: Int32, port: Int) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(listener, $0, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, $0, &length) == 0
        }
    }
    return (listener, Int(UInt16(bigEndian: address.sin_port)))
}
