import Foundation
import RedisClient
import RedisTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct HashSlotServerTests {
    /// A cluster-enabled node answers `CLUSTER KEYSLOT` without a cluster being formed: the server's own slot of
    /// every key must be ours, hash tags and binary keys included.
    @Test func agreesWithAClusterNode() async throws {
        let node = try await RedisServer.start(arguments: [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        ])
        defer { node.stop() }
        try await withClient(url: node.url) { client in
            var random = SystemRandomNumberGenerator()
            var keys = ["123456789", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "{", "}{", "é{ü}x"]
            for _ in 0..<500 {
                let length = Int(random.next() % 24)
                keys.append(String((0..<length).map { _ in "ab{}:xyz01é".randomElement() ?? "a" }))
            }
            for key in keys {
                let slot = try await client.send("CLUSTER", "KEYSLOT", key).int
                #expect(slot == HashSlot(key).value, "slot of \(key)")
            }
        }
    }
}
