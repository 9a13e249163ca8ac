import Foundation
import RedisClient
import RedisSession
import RedisTesting
import SettingsSync
import Testing

/// Session values encrypted at rest, on a real server: what Redis holds and sees, rotation, a removed key, and
/// stored bytes an attacker with write access changed.
@Suite(.timeLimit(.minutes(2))) struct EncryptionTests {
    static func key(_ id: String, _ byte: UInt8) throws -> SessionEncryption.Key {
        try SessionEncryption.Key(id: id, bytes: Array(repeating: byte, count: 32))
    }

    static func store(
        _ client: RedisClient, prefix: String, keys: [SessionEncryption.Key]
    ) throws -> RedisSessionStore {
        RedisSessionStore(
            client: client,
            configuration: SessionStoreConfiguration(
                keyPrefix: prefix, touchInterval: .zero, encryption: try SessionEncryption(keys: keys)))
    }

    /// A scan of every key and a `MONITOR` recording of a login, a settings change and a page view show no user
    /// agent, no CSRF token and no attribute value in plaintext.
    @Test func redisNeitherHoldsNorSeesAValueInPlaintext() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
        let prefix = "enc:"
        let store = try Self.store(client, prefix: prefix, keys: [try Self.key("k1", 1)])
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        let bus = SessionEventBus(client: client, keyPrefix: prefix)
        let flows = SessionFlows(sessions: store, settings: settings, bus: bus, cache: nil, instanceID: "web-1")
        let secrets = ["SecretAgent/9.9 (Plan9)", "csrf-token-Zq81", "cart-item-Hx55", "198.51.100.77"]
        let monitor = try await RedisMonitor.start(port: server.port)

        var session = try await flows.login(
            session: nil, userID: "alice", attributes: ["csrf": secrets[1]],
            labels: ["agent": secrets[0], "address": secrets[3]])
        session["cart"] = secrets[2]
        try await store.save(&session)
        _ = try await flows.changeTimezone(session: &session, to: "Asia/Tokyo")
        let page = try #require(try await store.load(id: session.id))  // a page view
        #expect(page["csrf"] == secrets[1] && page["cart"] == secrets[2])
        #expect(try await store.sessions(userID: "alice").first?.labels["agent"] == secrets[0])
        _ = try await client.send("PING")
        let seen = await monitor.stop().flatMap(\.arguments).joined(separator: "\n")

        var held: [String] = []
        for key in try await client.send("KEYS", "*").array?.compactMap(\.string) ?? [] {
            let reply = try await client.send("TYPE", key)
            if reply == .simpleString("hash") {
                held += try await client.send("HGETALL", key).array?.compactMap { $0.bytes.map { String(decoding: $0, as: UTF8.self) } } ?? []
            } else if reply == .simpleString("string") {
                held += [try await client.send("GET", key).string ?? ""]
            }
        }
        #expect(seen.contains("HSET") && !held.isEmpty, "the recording and the scan saw the writes")
        for secret in secrets {
            #expect(!seen.contains(secret), "MONITOR saw \(secret)")
            #expect(!held.joined(separator: "\n").contains(secret), "Redis holds \(secret)")
        }
        await client.close()
    }

    /// New key first, old key second: old values read, the next save writes every value under the new key (not only
    /// the changed ones), and once the old key is removed the session still loads. A value left under a removed key
    /// ends its session with an error that names the key.
    @Test func rotationReencryptsEverythingAtTheNextSave() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let prefix = "rot\(UUID().uuidString.prefix(6)):"
        let old = try Self.key("old", 1)
        let new = try Self.key("new", 2)
        let before = try Self.store(client, prefix: prefix, keys: [old])
        let created = try await before.create(
            userID: "ravi", attributes: ["a": "1", "b": "2"], labels: ["agent": "curl"])
        let forgotten = try await before.create(userID: "ravi", attributes: ["a": "left behind"])

        let rotating = try Self.store(client, prefix: prefix, keys: [new, old])
        var loaded = try #require(try await rotating.load(id: created.id))
        #expect(loaded["a"] == "1" && loaded["b"] == "2" && loaded.labels["agent"] == "curl")
        #expect(loaded.hasChanges, "a session under an old key is due for a save")
        loaded["a"] = "3"
        try await rotating.save(&loaded)
        let key = SessionKeys(prefix: prefix).session(created.id)
        let stored = try await client.send("HGETALL", key).array ?? []
        var ids: [String: String] = [:]
        for index in stride(from: 0, to: stored.count - 1, by: 2) {
            guard let field = stored[index].string, !field.hasPrefix("_") else { continue }
            ids[field] = stored[index + 1].bytes.flatMap(SessionEncryption.keyID(ofStored:))
        }
        #expect(ids == ["a:a": "new", "a:b": "new", "l:agent": "new"], "\(ids)")

        let after = try Self.store(client, prefix: prefix, keys: [new])
        let reloaded = try #require(try await after.load(id: created.id))
        #expect(reloaded["a"] == "3" && reloaded["b"] == "2" && !reloaded.hasChanges)
        do {
            _ = try await after.load(id: forgotten.id)
            Issue.record("a session under a removed key loaded")
        } catch {
            #expect(error.code == .corruptSession && error.message.contains("'old'"), "\(error)")
        }
        await client.close()
    }

    /// A sign-in's new ID, a change of user and the devices page all re-bind the values to the new stored name.
    @Test func regenerateChangeOfUserAndTheDeviceListKeepTheirValues() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let store = try Self.store(client, prefix: "mv\(UUID().uuidString.prefix(6)):", keys: [try Self.key("k", 3)])
        var session = try await store.create(userID: nil, attributes: ["cart": "2 apples"], labels: ["agent": "a"])
        session.userID = "uma"  // a login: a change of user
        try await store.regenerate(&session)
        session["theme"] = "dark"
        try await store.regenerate(&session)  // the same user: the move script
        let loaded = try #require(try await store.load(id: session.id))
        #expect(loaded["cart"] == "2 apples" && loaded["theme"] == "dark" && loaded.userID == "uma")
        #expect(try await store.sessions(userID: "uma").map(\.labels) == [["agent": "a"]])
        await client.close()
    }

    /// Stored bytes changed behind the store's back: a flipped bit, a truncated value, a value copied to another
    /// field or another session, a key ID nobody configured. Each ends the session as corrupt data; none crashes.
    @Test func tamperedValuesAreCorruptSessions() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let prefix = "tam\(UUID().uuidString.prefix(6)):"
        let store = try Self.store(client, prefix: prefix, keys: [try Self.key("k", 4)])
        let keys = SessionKeys(prefix: prefix)
        func tampered(_ change: (String, [UInt8], String) async throws -> Void) async throws -> Bool {
            let session = try await store.create(userID: "tia", attributes: ["role": "user", "plan": "free"])
            let other = try await store.create(userID: "tia", attributes: ["role": "admin"])
            let key = keys.session(session.id)
            let value = try #require(try await client.send("HGET", key, "a:role").bytes)
            try await change(key, value, keys.session(other.id))
            do {
                _ = try await store.load(id: session.id)
                return false
            } catch {
                return error.code == .corruptSession
            }
        }
        #expect(try await tampered { key, value, _ in
            var flipped = value
            flipped[flipped.count / 2] ^= 0x10
            try await client.send("HSET", key, "a:role", flipped)
        })
        #expect(try await tampered { key, value, _ in try await client.send("HSET", key, "a:role", Array(value.prefix(20))) })
        #expect(try await tampered { key, value, _ in try await client.send("HSET", key, "a:plan", value) })
        #expect(try await tampered { key, _, otherKey in
            let admin = try #require(try await client.send("HGET", otherKey, "a:role").bytes)
            try await client.send("HSET", key, "a:role", admin)
        })
        #expect(try await tampered { key, value, _ in
            var renamed = value
            renamed[2] = UInt8(ascii: "z")
            try await client.send("HSET", key, "a:role", renamed)
        })
        #expect(try await tampered { key, _, _ in try await client.send("HSET", key, "a:role", "\"admin\"") })
        await client.close()
    }
}
