#if Hummingbird
import Foundation
import Hummingbird
import HummingbirdRedisSession
import RedisClient
import RedisTesting
import Testing

/// Every behaviour of Hummingbird's `PersistDriver` contract, against a real redis-server.
@Suite(.timeLimit(.minutes(1))) struct RedisPersistDriverTests {
    struct Profile: Codable, Sendable, Equatable {
        var name: String
        var visits: Int
    }

    func withDriver(_ body: (RedisPersistDriver, RedisClient) async throws -> Void) async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let driver = RedisPersistDriver(client: client, keyPrefix: uniquePrefix())
        do {
            try await body(driver, client)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }

    @Test func createIsCreateIfAbsent() async throws {
        try await withDriver { driver, _ in
            try await driver.create(key: "a", value: Profile(name: "alice", visits: 1), expires: .seconds(60))
            await #expect(throws: PersistError.duplicate) {
                try await driver.create(key: "a", value: Profile(name: "mallory", visits: 0), expires: nil)
            }
            #expect(try await driver.get(key: "a", as: Profile.self) == Profile(name: "alice", visits: 1))
        }
    }

    @Test func setOverwritesAndGetReadsBack() async throws {
        try await withDriver { driver, _ in
            #expect(try await driver.get(key: "b", as: Profile.self) == nil)
            try await driver.set(key: "b", value: Profile(name: "bob", visits: 1), expires: nil)
            try await driver.set(key: "b", value: Profile(name: "bob", visits: 2), expires: nil)
            #expect(try await driver.get(key: "b", as: Profile.self) == Profile(name: "bob", visits: 2))
            try await driver.set(key: "n", value: 42, expires: nil)
            #expect(try await driver.get(key: "n", as: Int.self) == 42)
        }
    }

    @Test func removeDeletes() async throws {
        try await withDriver { driver, _ in
            try await driver.set(key: "c", value: "gone soon", expires: nil)
            try await driver.remove(key: "c")
            #expect(try await driver.get(key: "c", as: String.self) == nil)
            try await driver.remove(key: "never-set")  // removing nothing is not an error
        }
    }

    @Test func expiryIsTheKeysTTLAndASetWithoutOneKeepsIt() async throws {
        try await withDriver { driver, client in
            try await driver.set(key: "d", value: 1, expires: .seconds(100))
            let ttl = try #require(try await client.send("PTTL", driver.keyPrefix + "d").int)
            #expect(ttl > 90_000 && ttl <= 100_000)
            try await driver.set(key: "d", value: 2, expires: nil)  // the contract: keep the expiry
            let kept = try #require(try await client.send("PTTL", driver.keyPrefix + "d").int)
            #expect(kept > 90_000 && kept <= 100_000)
            let withTTL = try #require(try await driver.getWithTTL(key: "d", as: Int.self))
            #expect(withTTL.object == 2)
            #expect(withTTL.ttl.map { $0 > .seconds(90) && $0 <= .seconds(100) } == true)

            try await driver.create(key: "e", value: 1, expires: .milliseconds(50))
            #expect(await eventually(timeout: .seconds(2)) { (try? await driver.get(key: "e", as: Int.self)) == nil })
            try await driver.create(key: "e", value: 2, expires: nil)  // expired: free to create again
            #expect(try await driver.getWithTTL(key: "e", as: Int.self)?.ttl == nil, "no expiry given, none set")
        }
    }

    @Test func aWrongStoredTypeIsAnInvalidConversion() async throws {
        try await withDriver { driver, client in
            try await driver.set(key: "f", value: "a string", expires: nil)
            await #expect(throws: PersistError.invalidConversion) { try await driver.get(key: "f", as: Profile.self) }
            await #expect(throws: PersistError.invalidConversion) {
                try await driver.getWithTTL(key: "f", as: Int.self)
            }
            // Not even a string: another client's hash under the same name.
            try await client.send("HSET", driver.keyPrefix + "g", "field", "value")
            await #expect(throws: PersistError.invalidConversion) { try await driver.get(key: "g", as: String.self) }
            await #expect(throws: PersistError.invalidConversion) {
                try await driver.getWithTTL(key: "g", as: String.self)
            }
        }
    }
}
#endif  // Hummingbird
