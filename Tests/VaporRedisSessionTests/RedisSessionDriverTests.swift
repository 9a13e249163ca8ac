#if Vapor
import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing
import Vapor
import VaporRedisSession
import VaporTesting

/// A Vapor app on the driver, against a real redis-server: two instances share Redis, as two web instances behind a
/// load balancer would.
@Suite(.timeLimit(.minutes(2))) struct RedisSessionDriverTests {
    /// The app: sign in by setting the user, a handler that changes one attribute, a page that reads the session, log
    /// out, and log out everywhere.
    static func configure(_ app: Application, store: RedisSessionStore) {
        app.sessions.use(.redis(store))  // the one line
        app.middleware.use(app.sessions.middleware)
        app.post("login", ":user") { req -> HTTPStatus in
            req.session.data["userID"] = req.parameters.get("user")
            req.session.data["theme"] = "light"
            return .noContent
        }
        app.post("theme", ":theme") { req -> HTTPStatus in
            req.session.data["theme"] = req.parameters.get("theme")
            return .noContent
        }
        app.get { req -> String in
            guard req.hasSession, let user = req.session.data["userID"] else { return "anonymous" }
            return "\(user) \(req.session.data["theme"] ?? "-")"
        }
        app.post("logout") { req -> HTTPStatus in
            req.session.destroy()
            return .noContent
        }
        app.post("logout-everywhere") { req async throws -> HTTPStatus in
            guard let user = req.session.data["userID"] else { return .unauthorized }
            try await req.redisSessions?.destroyAll(userID: user)
            req.session.destroy()
            return .noContent
        }
    }

    @Test func signInChangeOneAttributeAndLogOutEverywhereFromAnotherInstance() async throws {
        try await Support.withTwoInstances(configure: { Self.configure($0, store: $1) }) { first, second, one, two in
            let anonymousRequests = one.client.statistics.requests
            let anonymous = try await first.testing().sendRequest(.GET, "/")
            #expect(anonymous.body.string == "anonymous" && Support.cookie(anonymous) == nil)
            #expect(one.client.statistics.requests == anonymousRequests, "no cookie, no Redis call")

            let login = try await first.testing().sendRequest(.POST, "login/alice")
            let laptop = try #require(Support.cookie(login))
            let aliceTag = RedisSession.SessionID.tag(forUser: "alice")
            let laptopTag = RedisSession.SessionID(laptop)?.tag
            #expect(laptopTag == aliceTag)
            var headers = HTTPHeaders()
            headers.cookie = ["rsess": .init(string: laptop)]
            #expect(
                try await second.testing().sendRequest(.GET, "/", headers: headers).body.string == "alice light")

            // One attribute changed: one write, of that attribute; the ID stays.
            let savesBefore = two.statistics.saves
            let change = try await second.testing().sendRequest(.POST, "theme/dark", headers: headers)
            #expect(change.status == .noContent)
            #expect(Support.cookie(change) == laptop)
            #expect(two.statistics.saves == savesBefore + 1)
            let page = try await first.testing().sendRequest(.GET, "/", headers: headers)
            #expect(page.body.string == "alice dark")
            #expect(one.statistics.saves == 0, "a request that changed nothing wrote nothing")

            // The TTL is the idle timeout (30 min by default), never "forever".
            let parsed = RedisSession.SessionID(laptop)
            let id = try #require(parsed)
            let ttl = try #require(
                try await one.client.send("PTTL", SessionKeys(prefix: one.configuration.keyPrefix).session(id)).int)
            #expect(ttl > 29 * 60 * 1000 && ttl <= 30 * 60 * 1000)

            // A second device, then log out everywhere from the other instance.
            let phone = try #require(Support.cookie(try await second.testing().sendRequest(.POST, "login/alice")))
            let everywhere = try await second.testing().sendRequest(.POST, "logout-everywhere", headers: headers)
            #expect(everywhere.status == .noContent)
            var phoneHeaders = HTTPHeaders()
            phoneHeaders.cookie = ["rsess": .init(string: phone)]
            #expect(try await first.testing().sendRequest(.GET, "/", headers: headers).body.string == "anonymous")
            #expect(
                try await first.testing().sendRequest(.GET, "/", headers: phoneHeaders).body.string == "anonymous")
        }
    }

    @Test func signingInOverAnotherUserGivesANewIDAndLogoutEnds() async throws {
        let url = try await RedisServer.sharedURL()
        let store = try Support.store(url: url, prefix: Support.uniquePrefix())
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let bob = try #require(Support.cookie(try await app.testing().sendRequest(.POST, "login/bob")))
            var headers = HTTPHeaders()
            headers.cookie = ["rsess": .init(string: bob)]
            let carol = try #require(
                Support.cookie(try await app.testing().sendRequest(.POST, "login/carol", headers: headers)))
            #expect(carol != bob, "a change of user gets a new ID")
            #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "anonymous")
            headers.cookie = ["rsess": .init(string: carol)]
            #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "carol light")
            _ = try await app.testing().sendRequest(.POST, "logout", headers: headers)
            #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "anonymous")
            // Malformed cookies cost no store call.
            let before = store.client.statistics.requests
            headers.cookie = ["rsess": .init(string: "not-a-session-id")]
            #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "anonymous")
            #expect(store.client.statistics.requests == before)
        }
        await store.client.close()
    }

    @Test func aRedisThatIsDownIsA503NotALogout() async throws {
        let server = try await RedisServer.start()
        let store = try Support.store(url: server.url, prefix: "vp:")
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let dave = try #require(Support.cookie(try await app.testing().sendRequest(.POST, "login/dave")))
            var headers = HTTPHeaders()
            headers.cookie = ["rsess": .init(string: dave)]
            server.stop()
            let down = try await app.testing().sendRequest(.GET, "/", headers: headers)
            #expect(down.status == .serviceUnavailable)
            #expect(Support.cookie(down) == nil, "the cookie stays: the user is still signed in")
        }
        await store.client.close()
    }

    @Test func aStoreWithASessionCacheAnswersRepeatedLoadsFromMemory() async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = Support.uniquePrefix()
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let store = RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix),
            cache: SessionCache.Configuration())
        let cache = try #require(store.cache)
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let login = try await app.testing().sendRequest(.POST, "login/erin")
            #expect(await eventually { cache.statistics.isTracking }, "the provider runs the cache with the app")
            var headers = HTTPHeaders()
            headers.cookie = ["rsess": .init(string: try #require(Support.cookie(login)))]
            for _ in 0..<5 {
                #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "erin light")
            }
            #expect(store.statistics.loadsFromMemory >= 3)
        }
        #expect(await eventually { !cache.statistics.isTracking }, "and ends it at shutdown")
        await client.close()
    }
}
#endif  // Vapor
