import Foundation
import RedisClient
import RedisSession

/// `session-bench keys`: the encryption key census of a running deployment, for an operator deciding whether an old
/// key can go.
enum KeyCensusCommand {
    static func run(options: BenchOptions) async -> Int32 {
        guard let url = options.redisURL else {
            FileHandle.standardError.write(Data("session-bench keys: give --redis-url of the deployment's Redis\n".utf8))
            return 64
        }
        guard SessionKeys.isValidPrefix(options.prefix) else {
            FileHandle.standardError.write(Data("session-bench keys: a key prefix cannot contain '{' or '}'\n".utf8))
            return 64
        }
        do {
            let counts = try await EncryptionKeyCensus(
                configuration: try RedisConfiguration(url: url), keyPrefix: options.prefix
            ).count()
            if options.json {
                let data = try JSONSerialization.data(withJSONObject: counts, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else if counts.isEmpty {
                print("no stored session values under \(options.prefix)")
            } else {
                for (id, count) in counts.sorted(by: { $0.value > $1.value }) {
                    print("\(id.padding(toLength: max(24, id.count), withPad: " ", startingAt: 0)) \(count) values")
                }
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("session-bench keys: \(error)\n".utf8))
            return 1
        }
    }
}
