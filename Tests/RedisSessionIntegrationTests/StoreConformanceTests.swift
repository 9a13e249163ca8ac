import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// The store under test: the same suite runs against Redis, Redis behind an instance's session cache (in each
/// tracking mode), a master found through Sentinel, a 3-primary Redis Cluster (with and without the cache, in each
/// mode: the users of each test land on every primary), Redis and the cluster with every value encrypted at rest,
/// and memory.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case redis, cachedRedis, broadcastCachedRedis, sentinel, cluster, cachedCluster, broadcastCachedCluster
    case encryptedRedis, encryptedCluster, memory
    var testDescription: String { rawValue }

    /// Two keys, as in the middle of a rotation: the first encrypts.
    static func encryption() throws -> SessionEncryption {
        try SessionEncryption(
            keys: [
                try SessionEncryption.Key(id: "k2", bytes: Array(repeating: 2, count: 32)),
                try SessionEncryption.Key(id: "k1", bytes: Array(repeating: 1, count: 32)),
            ])
    }
}

/// A store plus what the test needs to inspect or tear it down.
struct StoreFixture {
    let store: any SessionStore
    let client: RedisClient?
    let prefix: String
    var cacheTask: Task<Void, Never>? = nil

    var keys: SessionKeys { SessionKeys(prefix: prefix) }

    static func make(
        _ kind: StoreKind, idle: Duration = .seconds(60), absolute: Duration = .seconds(3600),
        touch: Duration = .zero, maxSize: Int = 4096, maxCount: Int = 8
    ) async throws -> StoreFixture {
        let prefix = "t\(UUID().uuidString.prefix(8)):"
        var configuration = SessionStoreConfiguration(
            keyPrefix: prefix, idleTimeout: idle, absoluteLifetime: absolute, touchInterval: touch,
            maximumEncodedSize: maxSize, maximumAttributeCount: maxCount,
            // The suite is about semantics; a loaded 2-core machine with six cluster nodes can take longer than the
            // default 250 ms to replicate (ReplicaAcknowledgementTests test the wait itself).
            replicaAcknowledgement: .init(timeout: .seconds(2)))
        switch kind {
        case .encryptedRedis, .encryptedCluster:
            configuration.encryption = try StoreKind.encryption()
            let url = kind == .encryptedCluster ? try await RedisCluster.shared().url : try await RedisServer.sharedURL()
            let client = RedisClient(configuration: try RedisConfiguration(url: url))
            return StoreFixture(
                store: RedisSessionStore(client: client, configuration: configuration), client: client, prefix: prefix)
        case .memory:
            return StoreFixture(store: MemorySessionStore(configuration: configuration), client: nil, prefix: prefix)
        case .redis:
            let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
            return StoreFixture(
                store: RedisSessionStore(client: client, configuration: configuration), client: client, prefix: prefix)
        case .sentinel:
            let client = RedisClient(configuration: try RedisConfiguration(url: try await SentinelSet.shared().url))
            return StoreFixture(
                store: RedisSessionStore(client: client, configuration: configuration), client: client, prefix: prefix)
        case .cluster:
            let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisCluster.shared().url))
            return StoreFixture(
                store: RedisSessionStore(client: client, configuration: configuration), client: client, prefix: prefix)
        case .cachedRedis, .cachedCluster, .broadcastCachedRedis, .broadcastCachedCluster:
            let onCluster = kind == .cachedCluster || kind == .broadcastCachedCluster
            let url = onCluster ? try await RedisCluster.shared().url : try await RedisServer.sharedURL()
            let client = RedisClient(configuration: try RedisConfiguration(url: url))
            let tracking: SessionTracking =
                kind == .broadcastCachedRedis || kind == .broadcastCachedCluster ? .broadcast : .holders
            let store = RedisSessionStore(
                client: client, configuration: configuration, cache: SessionCache.Configuration(tracking: tracking))
            let task = Task { await store.run() }
            let trackingOn = await eventually { store.cache?.statistics.isTracking ?? false }
            #expect(trackingOn, "the session cache never started tracking")
            return StoreFixture(store: store, client: client, prefix: prefix, cacheTask: task)
        }
    }

    /// Runs `body` with a fixture and closes it afterwards, whether `body` returns or throws: teardown is awaited.
    static func with<T>(
        _ kind: StoreKind, idle: Duration = .seconds(60), absolute: Duration = .seconds(3600),
        touch: Duration = .zero, maxSize: Int = 4096, maxCount: Int = 8, _ body: (StoreFixture) async throws -> T
    ) async throws -> T {
        let fixture = try await make(
            kind, idle: idle, absolute: absolute, touch: touch, maxSize: maxSize, maxCount: maxCount)
        do {
            let result = try await body(fixture)
            await fixture.close()
            return result
        } catch {
            await fixture.close()
            throw error
        }
    }

    func close() async {
        cacheTask?.cancel()
        await cacheTask?.value
        await client?.close()
    }
}

@Suite(.timeLimit(.minutes(1))) struct StoreConformanceTests {
    /// The suite's users were chosen by name, and their keys' slots land on every primary of the test cluster, so
    /// every script and pipeline of the suite runs against each primary.
    @Test func theUsersOfThisSuiteLandOnEveryPrimaryOfTheCluster() async throws {
        let cluster = try await RedisCluster.shared()
        let users = ["alice", "bob", "carol", "dave", "erin", "frank", "heidi", "ivan", "judy", "kim"]
        var owners = Set<Int>()
        for user in users {
            owners.insert(try await cluster.owner(ofSlot: HashSlot("{" + SessionID.tag(forUser: user) + "}").value))
        }
        #expect(owners == Set(try await cluster.primaryPorts()))
    }

    @Test(arguments: StoreKind.allCases)
    func createLoadSaveRoundTrip(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            var session = try await store.create(userID: "alice", attributes: ["timezone": "Europe/Paris"])
            #expect(session.userID == "alice")
            var loaded = try #require(try await store.load(id: session.id))
            #expect(loaded["timezone"] == "Europe/Paris")
            #expect(loaded.userID == "alice")
            loaded["theme"] = "dark"
            loaded["timezone"] = nil
            try await store.save(&loaded)
            #expect(!loaded.hasChanges)
            let again = try #require(try await store.load(id: session.id))
            #expect(again["theme"] == "dark")
            #expect(again["timezone"] == nil)
            #expect(again.version > session.version)
            session["x"] = "1"
            try await store.save(&session)
            #expect(try await store.load(cookieValue: "garbage") == nil)
            #expect(try await store.load(id: SessionID()) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentSavesOfDifferentAttributesBothSurvive(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let created = try await store.create(userID: "bob", attributes: ["a": "0", "b": "0"])
            var first = try #require(try await store.load(id: created.id))
            var second = try #require(try await store.load(id: created.id))
            first["a"] = "from-first"
            second["b"] = "from-second"
            async let one: Void = store.save(&first)
            async let two: Void = store.save(&second)
            _ = try await (one, two)
            let merged = try #require(try await store.load(id: created.id))
            #expect(merged["a"] == "from-first")
            #expect(merged["b"] == "from-second")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func saveAfterDestroyDoesNotResurrect(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            var session = try await store.create(userID: "carol")
            try await store.destroy(id: session.id)
            session["late"] = "write"
            await #expect {
                try await store.save(&session)
            } throws: { error in
                (error as? SessionError)?.code == .sessionNotFound
            }
            #expect(try await store.load(id: session.id) == nil)
            #expect(try await store.sessions(userID: "carol").isEmpty)
            if let client = fixture.client {
                #expect(try await client.send("EXISTS", fixture.keys.session(session.id)) == .integer(0))
            }
            try await store.destroy(id: session.id)  // destroying twice is fine
        }
    }

    @Test(arguments: StoreKind.allCases)
    func regenerateKeepsDataAndKillsTheOldID(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            var session = try await store.create(userID: nil, attributes: ["cart": "3"])
            let oldID = session.id
            session.userID = "dave"
            session["timezone"] = "Asia/Tokyo"
            try await store.regenerate(&session)
            #expect(session.id != oldID)
            #expect(try await store.load(id: oldID) == nil)
            let loaded = try #require(try await store.load(id: session.id))
            #expect(loaded["cart"] == "3")
            #expect(loaded["timezone"] == "Asia/Tokyo")
            #expect(loaded.userID == "dave")
            #expect(try await store.sessions(userID: "dave").map(\.handle) == [session.id.handle])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aChangeOfUserMovesTheSessionToANewIDInTheUsersSlot(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            var session = try await store.create(userID: nil, attributes: ["cart": "2"], labels: ["agent": "curl"])
            let anonymous = session.id
            session.userID = "mallory"
            session["step"] = "1"
            try await store.save(&session)
            #expect(session.id != anonymous, "a save that changes the user gives a new ID")
            #expect(session.id.tag == SessionID.tag(forUser: "mallory"))
            #expect(try await store.load(id: anonymous) == nil, "the old ID is dead")
            let signedIn = try #require(try await store.load(id: session.id))
            #expect(signedIn.userID == "mallory" && signedIn["cart"] == "2" && signedIn["step"] == "1")
            #expect(signedIn.labels == ["agent": "curl"], "labels carry over a change of user")
            #expect(
                abs(signedIn.createdAt.timeIntervalSince(session.createdAt)) < 0.002,
                "the creation time, and so the absolute lifetime, carries over")
            #expect(try await store.sessions(userID: "mallory").map(\.handle) == [session.id.handle])

            let mallorys = session.id
            session.userID = nil
            try await store.regenerate(&session)
            #expect(session.id != mallorys && session.userID == nil)
            #expect(try await store.load(id: mallorys) == nil)
            #expect(try await store.sessions(userID: "mallory").isEmpty, "signing out leaves the user's index")
            #expect(try await store.load(id: session.id)?["cart"] == "2")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aSaveRacingAChangeOfUserFindsNoSession(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let created = try await store.create(userID: nil, attributes: ["a": "0"])
            var stale = try #require(try await store.load(id: created.id))
            var login = try #require(try await store.load(id: created.id))
            login.userID = "niaj"
            try await store.save(&login)
            stale["a"] = "late"
            await #expect {
                try await store.save(&stale)
            } throws: { error in
                (error as? SessionError)?.code == .sessionNotFound
            }
            #expect(try await store.load(id: created.id) == nil, "the late save left nothing loadable")
            #expect(try await store.load(id: login.id)?["a"] == "0")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func regenerateForTheSameUserStaysInItsSlot(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            var session = try await store.create(userID: "olivia", attributes: ["x": "1"])
            let first = session.id
            session["y"] = "2"
            try await store.regenerate(&session)
            #expect(session.id != first && session.id.tag == first.tag)
            #expect(try await store.load(id: first) == nil)
            #expect(try await store.load(id: session.id)?["y"] == "2")
            #expect(try await store.sessions(userID: "olivia").map(\.handle) == [session.id.handle])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func devicesAreListedByHandleAndCanBeSignedOutOneByOne(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let laptop = try await store.create(
                userID: "peggy", attributes: [:], labels: ["agent": "Firefox", "address": "192.0.2.1"])
            let phone = try await store.create(userID: "peggy", attributes: [:], labels: ["agent": "Safari"])
            let intruder = try await store.create(userID: "trent")
            let listed = try await store.sessions(userID: "peggy")
            #expect(Set(listed.map(\.handle)) == [laptop.id.handle, phone.id.handle])
            #expect(
                listed.first { $0.handle == laptop.id.handle }?.labels == ["agent": "Firefox", "address": "192.0.2.1"])
            #expect(listed.allSatisfy { $0.handle.text != laptop.id.text && $0.handle.text != phone.id.text })
            #expect(SessionHandle(laptop.id.handle.text) == laptop.id.handle)
            #expect(SessionHandle("not a handle") == nil)

            #expect(
                try await store.destroy(handle: intruder.id.handle, userID: "peggy") == false,
                "a handle of another user's session destroys nothing")
            #expect(try await store.load(id: intruder.id) != nil)
            #expect(try await store.destroy(handle: phone.id.handle, userID: "peggy"))
            #expect(try await store.load(id: phone.id) == nil)
            #expect(try await store.load(id: laptop.id) != nil)
            #expect(try await store.sessions(userID: "peggy").map(\.handle) == [laptop.id.handle])
            #expect(try await store.destroy(handle: phone.id.handle, userID: "peggy") == false)
        }
    }

    /// Time-based tests use multiples of this unit, with margins of at least 1.5 units either side, so a busy
    /// machine running the suite in parallel does not make them flaky.
    static let unit = Duration.milliseconds(250)

    @Test(arguments: StoreKind.allCases)
    func idleTimeoutSlidesOnLoadButAbsoluteLifetimeDoesNot(kind: StoreKind) async throws {
        let unit = Self.unit
        try await StoreFixture.with(kind, idle: unit * 4, absolute: unit * 11) { fixture in
            let store = fixture.store
            let session = try await store.create(userID: "erin")
            for _ in 0..<3 {
                try await Task.sleep(for: unit * 2.5)
                #expect(try await store.load(id: session.id) != nil, "a load within the idle timeout slides it")
            }
            try await Task.sleep(for: unit * 4)
            #expect(try await store.load(id: session.id) == nil, "past the absolute lifetime the session is gone")

            let idle = try await store.create(userID: "erin")
            try await Task.sleep(for: unit * 5.5)
            #expect(try await store.load(id: idle.id) == nil, "an idle session expires")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func touchesAreThrottled(kind: StoreKind) async throws {
        let unit = Self.unit
        try await StoreFixture.with(kind, idle: unit * 10, touch: unit * 4) { fixture in
            let store = fixture.store
            let session = try await store.create(userID: "frank")
            try await Task.sleep(for: unit * 0.4)
            let early = try #require(try await store.load(id: session.id))
            #expect(
                abs(early.lastSeenAt.timeIntervalSince(session.lastSeenAt)) < 0.002,
                "a load inside the touch interval does not rewrite the session")
            if let client = fixture.client {
                let ttl = try await client.send("PTTL", fixture.keys.session(session.id)).int ?? 0
                let ceiling =
                    Int((unit * 9.8).components.seconds * 1000)
                    + Int((unit * 9.8).components.attoseconds / 1_000_000_000_000_000)
                #expect(ttl < ceiling, "the TTL was not refreshed inside the touch interval (\(ttl) ms)")
            }
            try await Task.sleep(for: unit * 4.5)
            let late = try #require(try await store.load(id: session.id))
            #expect(late.lastSeenAt > session.lastSeenAt, "past the touch interval a load refreshes the session")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func userIndexListsLiveSessionsAndForgetsExpiredOnes(kind: StoreKind) async throws {
        let unit = Self.unit
        try await StoreFixture.with(kind, idle: unit * 4) { fixture in
            let store = fixture.store
            let user = "grace-\(UUID().uuidString.prefix(4))"
            let first = try await store.create(userID: user)
            let second = try await store.create(userID: user)
            _ = try await store.create(userID: "someone-else")
            #expect(Set(try await store.sessions(userID: user).map(\.handle)) == [first.id.handle, second.id.handle])
            try await Task.sleep(for: unit * 2.5)
            _ = try await store.load(id: second.id)
            try await Task.sleep(for: unit * 2.5)
            let live = try await store.sessions(userID: user)
            #expect(live.map(\.handle) == [second.id.handle])
            #expect(live.first.map { $0.expiresAt > $0.lastSeenAt } ?? false)
            if let client = fixture.client {
                #expect(
                    try await client.send("ZCARD", fixture.keys.userIndex(user)) == .integer(1), "the index was pruned")
                #expect(try await client.send("PTTL", fixture.keys.userIndex(user)).int ?? -1 > 0, "the index expires")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func destroyAllLogsOutEverywhere(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let sessions = [
                try await store.create(userID: "heidi"), try await store.create(userID: "heidi"),
                try await store.create(userID: "heidi"),
            ]
            let other = try await store.create(userID: "ivan")
            #expect(try await store.destroyAll(userID: "heidi") == 3)
            for session in sessions { #expect(try await store.load(id: session.id) == nil) }
            #expect(try await store.sessions(userID: "heidi").isEmpty)
            #expect(try await store.load(id: other.id) != nil)
            #expect(try await store.destroyAll(userID: "nobody") == 0)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func limitsFailClearlyAndChangeNothing(kind: StoreKind) async throws {
        try await StoreFixture.with(kind, maxSize: 200, maxCount: 3) { fixture in
            let store = fixture.store
            var session = try await store.create(userID: "judy", attributes: ["a": "1"])
            session["b"] = "2"
            session["c"] = "3"
            session["d"] = "4"
            await #expect {
                try await store.save(&session)
            } throws: { error in
                guard let error = error as? SessionError else { return false }
                return error.code == .tooManyAttributes && error.message.contains("limit is 3")
            }
            var big = try #require(try await store.load(id: session.id))
            #expect(big.keys == ["a"], "the failed save changed nothing")
            big["blob"] = String(repeating: "x", count: 300)
            await #expect {
                try await store.save(&big)
            } throws: { error in
                (error as? SessionError)?.code == .tooLarge
            }
            #expect(try #require(try await store.load(id: session.id)).keys == ["a"])
            await #expect(throws: SessionError.self) {
                try await store.create(userID: nil, attributes: ["huge": String(repeating: "y", count: 500)])
            }
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct RedisSessionStoreTests {
    @Test func corruptOrForeignDataIsAClearErrorNeverACrash() async throws {
        try await StoreFixture.with(.redis) { fixture in
            let client = try #require(fixture.client)
            let store = fixture.store
            let foreign = SessionID()
            try await client.send("SET", fixture.keys.session(foreign), "not a hash")
            await #expect {
                try await store.load(id: foreign)
            } throws: { error in
                (error as? SessionError)?.code == .corruptSession
            }
            let partial = SessionID()
            try await client.send("HSET", fixture.keys.session(partial), "a:x", "1")
            #expect(try await store.load(id: partial) == nil, "a hash without metadata is not a session")
            let noExpiry = SessionID()
            try await client.send("HSET", fixture.keys.session(noExpiry), "_c", "1", "_t", "1")
            await #expect {
                try await store.load(id: noExpiry)
            } throws: { error in
                (error as? SessionError)?.code == .corruptSession
            }
            let garbled = SessionID()
            try await client.send("HSET", fixture.keys.session(garbled), "_c", "1", "_t", "x")
            try await client.send("PEXPIRE", fixture.keys.session(garbled), 60_000)
            await #expect {
                try await store.load(id: garbled)
            } throws: { error in
                (error as? SessionError)?.code == .corruptSession
            }
            // Valid metadata but an attribute that is not JSON: the session loads, the attribute reads as an error.
            let badJSON = try await fixture.store.create(userID: nil, attributes: ["ok": "1"])
            try await client.send("HSET", fixture.keys.session(badJSON.id), "a:tz", "{not json")
            let loaded = try #require(try await store.load(id: badJSON.id))
            #expect(loaded["ok"] == "1")
            #expect(loaded["tz"] == nil)
            #expect(throws: SessionError.self) { try loaded.get("tz", as: String.self) }
            try await client.send("ZADD", fixture.keys.userIndex("zed"), "9999999999999", "not-a-session-id")
            #expect(try await store.sessions(userID: "zed").isEmpty)
            try await client.send("SET", fixture.keys.userIndex("yan"), "wrong type")
            await #expect(throws: SessionError.self) { try await store.sessions(userID: "yan") }
        }
    }

    @Test func aDownRedisIsUnavailableNotALogout() async throws {
        let port = try RedisServer.freeLoopbackPort()
        let client = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:\(port)"))
        let store = RedisSessionStore(client: client)
        await #expect {
            try await store.load(id: SessionID())
        } throws: { error in
            guard let error = error as? SessionError else { return false }
            return error.code == .storeUnavailable && (error.underlying as? RedisError)?.code == .connectionFailed
        }
        await client.close()
    }

    @Test func keysAndTTLsFollowTheDocumentedLayout() async throws {
        try await StoreFixture.with(.redis, idle: .seconds(60), absolute: .seconds(600)) { fixture in
            let client = try #require(fixture.client)
            let session = try await fixture.store.create(userID: "kim", attributes: ["timezone": "UTC"])
            let key = fixture.keys.session(session.id)
            #expect(try await client.send("TYPE", key) == .simpleString("hash"))
            #expect(try await client.send("HGET", key, "a:timezone").string == "\"UTC\"")
            #expect(try await client.send("HGET", key, "_u").string == "kim")
            let ttl = try await client.send("PTTL", key).int ?? 0
            #expect(ttl > 59_000 && ttl <= 60_000)
            let score = try await client.send("ZSCORE", fixture.keys.userIndex("kim"), session.id.handle.text).string
                .flatMap(
                    Double.init)
            let created = session.createdAt.timeIntervalSince1970 * 1000
            #expect(abs((score ?? 0) - (created + 600_000)) < 2, "the index is scored by absolute expiry")
        }
    }
}
