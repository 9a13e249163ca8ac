import Foundation
import RedisClient
import RedisSession
import RedisTesting
import SettingsSync
import Testing

/// The README's examples, compiled and run, so they stay true.
@Suite(.timeLimit(.minutes(1))) struct ReadmeExampleTests {
    @Test func sessionExample() async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = "readme\(UUID().uuidString.prefix(6)):"
        // README: begin sessions
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        let cookie = SessionCookie(secure: false, maxAge: store.configuration.absoluteLifetime)

        // At login: a new session (or regenerate the visitor's anonymous one), then set the cookie.
        var session = try await store.create(userID: "alice", attributes: ["timezone": "Europe/Paris"])
        let setCookie = cookie.header(for: session.id)

        // On the next request, whichever instance it lands on: one round trip.
        let requestCookieHeader = "rsess=\(session.id.text)"
        if let id = cookie.sessionID(fromCookieHeader: requestCookieHeader), var current = try await store.load(id: id)
        {
            current["theme"] = "dark"  // only this attribute is written
            try await store.save(&current)
            session = current
        }

        // "Log out everywhere": every session of the user, on every instance, at once.
        try await store.destroyAll(userID: "alice")
        await client.close()
        // README: end sessions
        #expect(setCookie.contains("HttpOnly"))
        #expect(session["theme"] == "dark")
    }

    @Test func sessionCacheExample() async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = "readme\(UUID().uuidString.prefix(6)):"
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let configuration = SessionStoreConfiguration(keyPrefix: prefix)
        let created = try await RedisSessionStore(client: client, configuration: configuration).create(userID: "bob")
        let id = created.id
        // README: begin session cache
        // The store keeps the sessions it loads in memory, exact through Redis' key tracking while it runs.
        let store = RedisSessionStore(client: client, configuration: configuration, cache: SessionCache.Configuration())
        let tracking = Task { await store.run() }  // a service: follows Redis' reports until cancelled

        // A session this instance loaded recently comes from memory; a change to it by anyone drops it at once.
        let session = try await store.load(id: id)
        // README: end session cache
        #expect(session?.userID == "bob")
        #expect(await eventually { store.cache?.statistics.isTracking == true })
        _ = try await store.load(id: id)
        #expect(await eventually { (try? await store.load(id: id)) != nil && (store.cache?.statistics.hits ?? 0) > 0 })
        tracking.cancel()
        await tracking.value
        await client.close()
    }

    @Test func settingsExample() async throws {
        let url = try await RedisServer.sharedURL()
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let prefix = "readme\(UUID().uuidString.prefix(6)):"
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        let visitorSession = try await store.create()
        do {
            // README: begin settings
            let bus = SessionEventBus(client: client, keyPrefix: prefix, subscriberName: "web-1-sub")
            let settings = UserSettingsStore(client: client, keyPrefix: prefix)
            let cache = UserSettingsCache(settings: settings, bus: bus, configuration: .init(policy: .refresh))
            let flows = SessionFlows(sessions: store, settings: settings, bus: bus, cache: cache, instanceID: "web-1")

            let following = Task { await cache.run() }  // a service: subscribes and applies events until cancelled

            var session = try await flows.login(session: visitorSession, userID: "alice")  // new ID, event
            try await flows.changeTimezone(session: &session, to: "Asia/Tokyo")  // versioned write + event, atomic
            let timezone = try await cache.timezone(for: "alice")  // memory on a hit, the settings record on a miss
            // README: end settings
            #expect(timezone == "Asia/Tokyo")
            #expect(session.id != visitorSession.id && session["timezone"] == "Asia/Tokyo")
            #expect(await eventually { cache.statistics.isSubscribed })
            following.cancel()
            await following.value
        }
        await client.close()
    }
}
