import Foundation
import RedisClient
import RedisSession
import SettingsSync
import RedisTesting
import Synchronization
import Testing

/// Key layout v2, proven on a real server: every command the store sends touches one hash slot (as Redis Cluster
/// requires), and nothing Redis holds or sees contains a usable session ID.
@Suite(.timeLimit(.minutes(2))) struct KeyLayoutTests {
    /// One command as the store sent it, with the commands it ran inside (a script's calls, a transaction's body).
    struct SentCommand {
        var name: String
        var parts: [[String]]
    }

    /// Groups monitored lines: a script's `lua` lines belong to the `EVAL`/`EVALSHA` before them, and a client's
    /// `MULTI` ... `EXEC` is one command.
    static func group(_ lines: [RedisMonitor.Command]) -> [SentCommand] {
        var commands: [SentCommand] = []
        var openTransactions: [String: Int] = [:]
        for (client, arguments) in lines.map({ ($0.client, $0.arguments) }) {
            guard let name = arguments.first?.uppercased() else { continue }
            if client == "lua" {
                if !commands.isEmpty { commands[commands.count - 1].parts.append(arguments) }
            } else if name == "MULTI" {
                openTransactions[client] = commands.count
                commands.append(SentCommand(name: "MULTI", parts: []))
            } else if let index = openTransactions[client] {
                if name == "EXEC" || name == "DISCARD" { openTransactions[client] = nil }
                commands[index].parts.append(arguments)
            } else {
                commands.append(SentCommand(name: name, parts: [arguments]))
            }
        }
        return commands
    }

    @Test func everyCommandTheStoreSendsTouchesOneSlot() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
        let prefix = "slots:"
        let store = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix, touchInterval: .zero))
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        let monitor = try await RedisMonitor.start(port: server.port)

        var cookies: [String] = []
        var random = SystemRandomNumberGenerator()
        for round in 0..<40 {
            let user = "user-\(round)-\(random.next() % 1_000_000)"
            let other = "other-\(round)-\(random.next() % 1_000_000)"
            var session = try await store.create(userID: user, attributes: ["a": "1"], labels: ["agent": "test"])
            var anonymous = try await store.create(userID: nil, attributes: ["cart": "1"])
            _ = try await store.load(id: session.id)  // a load, and (touch interval zero) a touch
            session["b"] = "2"
            session["a"] = nil
            try await store.save(&session)
            try await store.regenerate(&session)
            anonymous.userID = user  // a login: a change of user
            try await store.regenerate(&anonymous)
            anonymous.userID = other  // a change from one user to another
            try await store.save(&anonymous)
            cookies += [session.id.text, anonymous.id.text]
            _ = try await store.sessions(userID: user)
            try await store.destroy(id: anonymous.id)
            let extra = try await store.create(userID: user)
            try await store.destroy(handle: extra.id.handle, userID: user)
            _ = try await settings.write(
                userID: user, timezone: "Europe/Paris",
                announcing: SessionEventBus(client: client, keyPrefix: prefix).announcement(
                    .settingsChanged, user: user, timezone: "Europe/Paris", origin: "test"))
            _ = try await settings.read(userID: user)
            try await store.destroyAll(userID: user)
        }
        // Let the detached touches run before the recording stops.
        _ = try await client.send("PING")
        let lines = await monitor.stop()
        let commands = Self.group(lines.filter { $0.arguments.first?.uppercased() != "PING" })

        var slotsChecked = 0
        var names = Set<String>()
        for command in commands {
            var slots = Set<HashSlot>()
            for part in command.parts {
                names.insert(part.first?.uppercased() ?? "")
                for key in try await Self.keys(of: part, on: client) { slots.insert(HashSlot(key)) }
            }
            #expect(slots.count <= 1, "\(command.name) touched \(slots.count) slots: \(command.parts)")
            if !slots.isEmpty { slotsChecked += 1 }
        }
        // The recording holds what the store really did, script bodies and transactions included.
        for expected in ["EVALSHA", "HGETALL", "PTTL", "HSET", "HDEL", "RENAME", "ZADD", "ZREM", "DEL", "HINCRBY"] {
            #expect(names.contains(expected), "no \(expected) was recorded")
        }
        #expect(slotsChecked > 40 * 12, "only \(slotsChecked) keyed commands were recorded")
        let transcript = lines.map { $0.arguments.joined(separator: " ") }.joined(separator: "\n")
        for cookie in cookies {
            #expect(!transcript.contains(cookie), "MONITOR saw a session ID")
        }
        await client.close()
    }

    /// The keys of one command, as the server itself finds them (`COMMAND GETKEYS`); none for key-less commands.
    static func keys(of arguments: [String], on client: RedisClient) async throws -> [String] {
        guard let name = arguments.first?.uppercased(),
            !["MULTI", "EXEC", "TIME", "CLIENT", "SELECT", "PUBLISH", "SCRIPT", "COMMAND", "ROLE", "WAIT"].contains(
                name)
        else { return [] }
        let reply = try await client.send(RedisCommand(strings: ["COMMAND", "GETKEYS"] + arguments))
        if case .error(let message) = reply {
            #expect(message.contains("no key"), "COMMAND GETKEYS \(name): \(message)")
            return []
        }
        return reply.array?.compactMap(\.string) ?? []
    }

    @Test func nothingAtRestHoldsASessionID() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
        let prefix = "rest:"
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        let flows = SessionFlows(
            sessions: store, settings: UserSettingsStore(client: client, keyPrefix: prefix),
            bus: SessionEventBus(client: client, keyPrefix: prefix), cache: nil, instanceID: "test")
        var cookies: [String] = []
        for round in 0..<20 {
            let user = "user\(round % 5)"
            let visitor = try await store.create(userID: nil, attributes: ["cart": "1"])
            cookies.append(visitor.id.text)
            var session = try await flows.login(session: visitor, userID: user, labels: ["agent": "test"])
            cookies.append(session.id.text)
            session["theme"] = "dark"
            try await store.save(&session)
            try await flows.changeTimezone(session: &session, to: "Asia/Tokyo")
            if round % 3 == 0 { try await flows.logout(session: session) }
        }
        try await flows.logoutEverywhere(userID: "user0")

        var stored: [String] = []
        var cursor = "0"
        repeat {
            let reply = try #require(try await client.send("SCAN", cursor, "COUNT", 1000).array)
            cursor = try #require(reply.first?.string)
            for key in reply.last?.array?.compactMap(\.string) ?? [] {
                stored.append(key)
                switch try await client.send("TYPE", key).string {
                case "zset": stored += try await client.send("ZRANGE", key, 0, -1).array?.compactMap(\.string) ?? []
                case "hash": stored += try await client.send("HGETALL", key).array?.compactMap(\.string) ?? []
                case "string": stored.append(try await client.send("GET", key).string ?? "")
                default: break
                }
            }
        } while cursor != "0"
        #expect(stored.contains { $0.hasPrefix(prefix + "u:{") }, "the test left user indexes to look at")
        #expect(stored.contains { $0.hasPrefix(prefix + "s:{") }, "the test left sessions to look at")
        for cookie in cookies {
            #expect(!stored.contains { $0.contains(cookie) }, "a session ID is readable in Redis")
        }
        await client.close()
    }

    /// Sessions of layout v1 end at the upgrade; settings records (a user's data, not a credential) move into the
    /// user's slot on their first read, keeping their version.
    @Test func aV1SettingsRecordIsAdoptedOnFirstRead() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let prefix = "up\(UUID().uuidString.prefix(6)):"
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        try await client.send("HSET", prefix + "user:walter", "timezone", "Asia/Tokyo", "version", "7")
        let v1Session = SessionID()
        try await client.send("HSET", prefix + "s:" + v1Session.text, "_c", "1", "_t", "1", "_u", "walter")
        try await client.send("PEXPIRE", prefix + "s:" + v1Session.text, 60_000)

        #expect(try await settings.read(userID: "walter") == UserSettings(timezone: "Asia/Tokyo", version: 7))
        #expect(try await client.send("EXISTS", prefix + "user:walter") == .integer(0), "the v1 record is gone")
        #expect(try await client.send("HGET", SessionKeys(prefix: prefix).settings("walter"), "version").int == 7)
        #expect(try await settings.read(userID: "walter")?.timezone == "Asia/Tokyo")
        #expect(try await settings.read(userID: "nobody") == nil)
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        #expect(try await store.load(id: v1Session) == nil, "a v1 session is not found: its user signs in again")
        await client.close()
    }

    @Test func aUsersKeysShareOneSlotAndTheTagSaysLittle() {
        let keys = SessionKeys(prefix: "rsess:")
        var tags = Set<Substring>()
        for index in 0..<2000 {
            let user = "user-\(index)"
            let id = SessionID(userID: user)
            let slot = HashSlot(keys.userIndex(user))
            #expect(HashSlot(keys.session(id)) == slot)
            #expect(HashSlot(keys.settings(user)) == slot)
            #expect(HashSlot(keys.session(id.handle, userID: user)) == slot)
            #expect(!keys.session(id).contains(id.text))
            tags.insert(id.tag)
        }
        #expect(tags.count > 1900, "user tags spread (\(tags.count) distinct for 2000 users)")
        let anonymous = (0..<100).map { _ in SessionID().tag }
        #expect(Set(anonymous).count > 90, "anonymous tags are random")
    }

    /// No session whose login returned before `destroyAll` was sent survives it, however logins race it.
    @Test func destroyAllBeatsEveryLoginThatReturnedBeforeIt() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let store = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: "race\(UUID().uuidString.prefix(6)):"))
        /// IDs shared between the racing tasks.
        final class IDs: Sendable {
            let list = Mutex<[SessionID]>([])
            func append(_ id: SessionID) { list.withLock { $0.append(id) } }
            var snapshot: [SessionID] { list.withLock { $0 } }
        }
        let survivors = IDs()
        for round in 0..<1000 {
            let user = "racer\(round % 7)"
            let returned = IDs()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for login in 0..<3 {
                    group.addTask {
                        // Two kinds of login: a new session, and a visitor's session changing user.
                        var session: Session
                        if login == 0 {
                            session = try await store.create(userID: nil)
                            session.userID = user
                            try await store.regenerate(&session)
                        } else {
                            session = try await store.create(userID: user)
                        }
                        let id = session.id
                        returned.append(id)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .microseconds(Int.random(in: 0...400)))
                    // Only the logins that returned before destroyAll is sent must be gone afterwards.
                    let before = returned.snapshot
                    try await store.destroyAll(userID: user)
                    for id in before where try await store.load(id: id) != nil {
                        survivors.append(id)
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(survivors.snapshot.isEmpty, "\(survivors.snapshot.count) sessions survived destroyAll")
        await client.close()
    }
}
