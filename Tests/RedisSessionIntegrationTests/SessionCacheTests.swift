import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// The session cache against a real server, in both tracking modes: what it saves, and that no report it gets (or
/// loses) leaves a stale session.
@Suite(.timeLimit(.minutes(1))) struct SessionCacheTests {
    /// One web instance's worth: a pool, a cache following the store's keys, the store.
    struct Instance {
        let client: RedisClient
        let cache: SessionCache
        let store: RedisSessionStore
        let task: Task<Void, Never>

        static func start(
            url: String, prefix: String, name: String? = nil, tracking: SessionTracking
        ) async throws -> Instance {
            var configuration = try RedisConfiguration(url: url)
            configuration.clientName = name
            configuration.reconnectBackoff = .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))
            let client = RedisClient(configuration: configuration)
            let store = RedisSessionStore(
                client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix),
                cache: SessionCache.Configuration(tracking: tracking))
            let task = Task { await store.run() }
            let cache = try #require(store.cache)
            #expect(await eventually { cache.statistics.isTracking }, "the cache never started tracking")
            return Instance(client: client, cache: cache, store: store, task: task)
        }

        func stop() async {
            task.cancel()
            await task.value
            await client.close()
        }

        /// Waits for the report of this instance's own create: broadcast mode hears of every write, holders mode
        /// only of sessions this instance has read, so there is none to wait for.
        func createReported(_ count: Int = 1) async -> Bool {
            guard cache.configuration.tracking == .broadcast else { return cache.statistics.invalidations == 0 }
            return await eventually { cache.statistics.invalidations == count }
        }
    }

    private let prefix = "c\(UUID().uuidString.prefix(8)):"

    @Test(arguments: SessionTracking.allCases)
    func aRepeatedLoadCostsNoRoundTripAndAnotherClientsWriteIsSeen(tracking: SessionTracking) async throws {
        let url = try await RedisServer.sharedURL()
        let instance = try await Instance.start(url: url, prefix: prefix, tracking: tracking)
        let created = try await instance.store.create(userID: "alice", attributes: ["timezone": "Europe/Paris"])
        // In broadcast mode the create comes back as a report too; after it, the session stays cached.
        #expect(await instance.createReported())
        let before = instance.cache.statistics.invalidations
        _ = try await instance.store.load(id: created.id)
        let requestsBefore = instance.client.statistics.requests
        for _ in 0..<100 {
            #expect(try await instance.store.load(id: created.id)?["timezone"] == "Europe/Paris")
        }
        #expect(instance.client.statistics.requests == requestsBefore, "a cached load sent a command")
        #expect(instance.cache.statistics.hits == 100)
        // The store counts where its loads came from, and its writes.
        #expect(instance.store.statistics.loadsFromMemory == 100 && instance.store.statistics.loadsFromRedis == 1)

        // A write by anyone else (here a bare client, as redis-cli would be) reaches the cache through Redis.
        let other = RedisClient(configuration: try RedisConfiguration(url: url))
        try await other.send("HSET", SessionKeys(prefix: prefix).session(created.id), "a:timezone", "\"Asia/Tokyo\"")
        await other.close()
        #expect(await eventually { instance.cache.statistics.invalidations == before + 1 })
        #expect(try await instance.store.load(id: created.id)?["timezone"] == "Asia/Tokyo")
        var session = try #require(try await instance.store.load(id: created.id))
        session["theme"] = "dark"
        try await instance.store.save(&session)
        try await instance.store.save(&session)  // nothing changed: not a write
        #expect(instance.store.statistics.saves == 1)
        await instance.stop()
    }

    @Test(arguments: SessionTracking.allCases)
    func aMiddlewaresColdLoadIsOneMissAndOneRoundTripThenHits(tracking: SessionTracking) async throws {
        let url = try await RedisServer.sharedURL()
        let instance = try await Instance.start(url: url, prefix: prefix, tracking: tracking)
        let created = try await instance.store.create(userID: "carol", attributes: ["theme": "dark"])
        #expect(await instance.createReported())
        let cookie = SessionCookie()
        let header = "rsess=\(created.id.text)"
        // What a framework integration does per request: ask the memory, then (on a miss) Redis once.
        let cold = RequestSession()
        let start = cold.start(store: instance.store, cookie: cookie, cookieHeader: header)
        #expect(start == .load(created.id))
        #expect(try await cold.load(created.id) == nil)
        #expect(cold.current?["theme"] == "dark")
        #expect(instance.cache.statistics.misses == 1, "the memory was asked once, not again by the load")
        #expect(instance.store.statistics.loadsFromRedis == 1)
        let warm = RequestSession()
        #expect(warm.start(store: instance.store, cookie: cookie, cookieHeader: header) == .ready)
        #expect(warm.current?["theme"] == "dark" && instance.cache.statistics.hits == 1)
        await instance.stop()
    }

    @Test(arguments: SessionTracking.allCases)
    func aDestroyOnOneInstanceEndsTheSessionOnTheOther(tracking: SessionTracking) async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start(url: url, prefix: prefix, tracking: tracking)
        let b = try await Instance.start(url: url, prefix: prefix, tracking: tracking)
        let first = try await a.store.create(userID: "bob")
        let second = try await a.store.create(userID: "bob")
        // In broadcast mode the creates come back to B as reports too. A report that arrives while B's read is on its
        // way keeps that read out of the cache, as it should, so wait for both before reading.
        #expect(await b.createReported(2))
        #expect(try await b.store.load(id: first.id) != nil)
        #expect(try await b.store.load(id: second.id) != nil)
        #expect(b.cache.statistics.count == 2)

        try await a.store.destroy(id: first.id)
        #expect(try await a.store.load(id: first.id) == nil, "the writing instance reads its own write at once")
        #expect(try await eventually(timeout: .milliseconds(500)) { try await b.store.load(id: first.id) == nil })
        try await a.store.destroyAll(userID: "bob")
        #expect(try await eventually(timeout: .milliseconds(500)) { try await b.store.load(id: second.id) == nil })
        await a.stop()
        await b.stop()
    }

    @Test(arguments: SessionTracking.allCases)
    func aLostTrackingConnectionEmptiesTheCacheUntilItIsBack(tracking: SessionTracking) async throws {
        let url = try await RedisServer.sharedURL()
        let name = "cache\(UUID().uuidString.prefix(6))"
        let instance = try await Instance.start(url: url, prefix: prefix, name: name, tracking: tracking)
        let created = try await instance.store.create(userID: "carol", attributes: ["n": "1"])
        #expect(await instance.createReported())
        _ = try await instance.store.load(id: created.id)
        #expect(instance.cache.statistics.count == 1)

        // Cut the tracking connection, and change the session while it is cut. (Between the cut and the cache
        // noticing it no cache can know; a closed socket is noticed at once.)
        let other = RedisClient(configuration: try RedisConfiguration(url: url))
        let list = try await other.send("CLIENT", "LIST", "TYPE", "pubsub").string ?? ""
        let line = try #require(list.split(separator: "\n").first { $0.contains("name=\(name)-cache ") })
        let id = try #require(line.split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3))
        try await other.send("CLIENT", "KILL", "ID", String(id))
        try await other.send("HSET", SessionKeys(prefix: prefix).session(created.id), "a:n", "\"2\"")
        await other.close()
        #expect(await eventually { instance.cache.statistics.resyncs == 1 && instance.cache.statistics.isTracking })
        #expect(try await instance.store.load(id: created.id)?["n"] == "2")
        await instance.stop()
    }

    @Test(arguments: SessionTracking.allCases)
    func aDownRedisIsUnavailableNotServedFromMemory(tracking: SessionTracking) async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let instance = try await Instance.start(url: server.url, prefix: prefix, tracking: tracking)
        let created = try await instance.store.create(userID: "dave")
        #expect(await instance.createReported())
        _ = try await instance.store.load(id: created.id)
        #expect(try await instance.store.load(id: created.id) != nil)
        #expect(instance.cache.statistics.hits == 1)
        server.stop()
        #expect(await eventually { !instance.cache.statistics.isTracking })
        await #expect {
            try await instance.store.load(id: created.id)
        } throws: { error in
            (error as? SessionError)?.code == .storeUnavailable
        }
        await instance.stop()
    }

    @Test(arguments: SessionTracking.allCases)
    func aServerThatRefusesTrackingLeavesTheCacheOffAndSaysWhy(tracking: SessionTracking) async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let admin = RedisClient(configuration: try RedisConfiguration(url: server.url))
        // As a Redis older than 6 would: CLIENT TRACKING is refused, everything else works.
        try await admin.send("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-client|tracking")
        await admin.close()
        let url = "redis://limited:pw@127.0.0.1:\(server.port)"
        let reasons = Shared<[String]>([])
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let store = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix),
            cache: SessionCache.Configuration(tracking: tracking),
            cacheObserver: { event in
                if case .disconnected(let error) = event { reasons.update { $0.append(error.message) } }
            })
        let task = Task { await store.run() }
        let cache = try #require(store.cache)
        #expect(await eventually { !reasons.value.isEmpty })
        #expect(reasons.value.first?.contains("NOPERM") == true)
        let created = try await store.create(userID: "erin")
        for _ in 0..<3 { #expect(try await store.load(id: created.id)?.userID == "erin") }
        #expect(cache.statistics.hits == 0 && !cache.statistics.isTracking)
        task.cancel()
        await task.value
        await client.close()
    }

    /// Two trackers on one client would take each other's reports: the second holders-mode cache on a client serves
    /// nothing and says why; the first is unaffected.
    @Test func aSecondHoldersCacheOnOneClientServesNothingAndSaysWhy() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let first = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix),
            cache: SessionCache.Configuration(tracking: .holders))
        let reasons = Shared<[String]>([])
        let second = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: "other" + prefix),
            cache: SessionCache.Configuration(tracking: .holders),
            cacheObserver: { event in
                if case .disconnected(let error) = event { reasons.update { $0.append(error.message) } }
            })
        let firstTask = Task { await first.run() }
        #expect(await eventually { first.cache?.statistics.isTracking == true })
        let secondTask = Task { await second.run() }
        #expect(await eventually { !reasons.value.isEmpty })
        #expect(reasons.value.first?.contains("give each store that caches its own client") == true)
        let created = try await second.create(userID: "frank")
        for _ in 0..<3 { #expect(try await second.load(id: created.id)?.userID == "frank") }
        #expect(second.cache?.statistics.hits == 0 && second.cache?.statistics.isTracking == false)
        #expect(first.cache?.statistics.isTracking == true)
        secondTask.cancel()
        await secondTask.value
        firstTask.cancel()
        await firstTask.value
        await client.close()
    }
}
