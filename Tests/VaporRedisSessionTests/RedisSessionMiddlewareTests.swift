#if Vapor
import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing
import Vapor
import VaporRedisSession
import VaporTesting

/// A Vapor app on the component's own middleware (`req.redisSession`), against a real redis-server: two instances
/// share Redis, as two web instances behind a load balancer would.
@Suite(.timeLimit(.minutes(2))) struct RedisSessionMiddlewareTests {
    /// The app: sign in, a handler that changes one attribute, a page that reads the session, sign out, and log out
    /// everywhere.
    static func configure(_ app: Application, store: RedisSessionStore) {
        app.middleware.use(app.redisSessionMiddleware(store))  // the one line
        app.post("login", ":user") { req async throws -> HTTPStatus in
            let user = try req.parameters.require("user")
            try await req.redisSession.signIn(userID: user, attributes: ["theme": "light"])
            return .noContent
        }
        app.post("theme", ":theme") { req -> HTTPStatus in
            let theme = try req.parameters.require("theme")
            guard req.redisSession.update({ $0["theme"] = theme }) != nil else { return .unauthorized }
            return .noContent
        }
        app.get { req -> String in
            guard let session = req.redisSession.current, let user = session.userID else { return "anonymous" }
            return "\(user) \(session["theme"] ?? "-")"
        }
        app.post("logout") { req async throws -> HTTPStatus in
            try await req.redisSession.signOut()
            return .noContent
        }
        app.post("logout-everywhere") { req async throws -> HTTPStatus in
            guard let user = req.redisSession.userID else { return .unauthorized }
            try await req.redisSessions?.destroyAll(userID: user)
            req.redisSession.ended()
            return .noContent
        }
    }

    @Test func signInChangeOneAttributeAndLogOutEverywhereFromAnotherInstance() async throws {
        try await Support.withTwoInstances(configure: { Self.configure($0, store: $1) }) { first, second, one, two in
            let anonymousRequests = one.client.statistics.requests
            let anonymous = try await first.testing().sendRequest(.GET, "/")
            #expect(anonymous.body.string == "anonymous" && Support.setCookie(anonymous) == nil)
            #expect(one.client.statistics.requests == anonymousRequests, "no cookie, no Redis call")

            // Sign-in: a new ID in alice's slot; the cookie lives as long as the absolute lifetime (12 h), since
            // nothing sends it again while the session slides.
            let login = try await first.testing().sendRequest(.POST, "login/alice")
            let setCookie = try #require(Support.setCookie(login))
            #expect(setCookie.contains("Max-Age=43200") && setCookie.contains("HttpOnly"))
            let laptop = try #require(Support.cookie(login))
            #expect(RedisSession.SessionID(laptop)?.tag == RedisSession.SessionID.tag(forUser: "alice"))
            let page = try await second.testing().sendRequest(.GET, "/", headers: Support.headers(laptop))
            #expect(page.body.string == "alice light")
            #expect(Support.setCookie(page) == nil, "a page that changed nothing sets no cookie")

            // One attribute changed, with no save call in the handler: one write; the ID stays.
            let savesBefore = two.statistics.saves
            let change = try await second.testing().sendRequest(
                .POST, "theme/dark", headers: Support.headers(laptop))
            #expect(change.status == .noContent && Support.setCookie(change) == nil)
            #expect(two.statistics.saves == savesBefore + 1)
            let reread = try await first.testing().sendRequest(.GET, "/", headers: Support.headers(laptop))
            #expect(reread.body.string == "alice dark")
            #expect(one.statistics.saves == 0, "a request that changed nothing wrote nothing")

            // The key's TTL is the idle timeout (30 min by default), never "forever".
            let parsed = RedisSession.SessionID(laptop)
            let id = try #require(parsed)
            let ttl = try #require(
                try await one.client.send("PTTL", SessionKeys(prefix: one.configuration.keyPrefix).session(id)).int)
            #expect(ttl > 29 * 60 * 1000 && ttl <= 30 * 60 * 1000)

            // A second device, then log out everywhere from the other instance.
            let phone = try #require(Support.cookie(try await second.testing().sendRequest(.POST, "login/alice")))
            let everywhere = try await second.testing().sendRequest(
                .POST, "logout-everywhere", headers: Support.headers(laptop))
            #expect(everywhere.status == .noContent)
            #expect(Support.setCookie(everywhere)?.contains("Max-Age=0") == true, "the cookie is cleared")
            let gone = try await first.testing().sendRequest(.GET, "/", headers: Support.headers(phone))
            #expect(gone.body.string == "anonymous")
            #expect(Support.setCookie(gone)?.contains("Max-Age=0") == true, "a dead session's cookie is cleared")
        }
    }

    @Test func signingInOverAnotherUserGivesANewIDAndSignOutEnds() async throws {
        let url = try await RedisServer.sharedURL()
        let store = try Support.store(url: url, prefix: Support.uniquePrefix())
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let bob = try #require(Support.cookie(try await app.testing().sendRequest(.POST, "login/bob")))
            let carol = try #require(
                Support.cookie(try await app.testing().sendRequest(.POST, "login/carol", headers: Support.headers(bob)))
            )
            #expect(carol != bob, "a change of user gets a new ID")
            #expect(
                try await app.testing().sendRequest(.GET, "/", headers: Support.headers(bob)).body.string == "anonymous"
            )
            #expect(
                try await app.testing().sendRequest(.GET, "/", headers: Support.headers(carol)).body.string
                    == "carol light")
            let logout = try await app.testing().sendRequest(.POST, "logout", headers: Support.headers(carol))
            #expect(Support.setCookie(logout)?.contains("Max-Age=0") == true)
            #expect(
                try await app.testing().sendRequest(.GET, "/", headers: Support.headers(carol)).body.string
                    == "anonymous")
            // A malformed cookie costs no store call, and is cleared.
            let before = store.client.statistics.requests
            let malformed = try await app.testing().sendRequest(.GET, "/", headers: Support.headers("not-a-session-id"))
            #expect(malformed.body.string == "anonymous" && Support.setCookie(malformed)?.contains("Max-Age=0") == true)
            #expect(store.client.statistics.requests == before)
        }
        await store.client.close()
    }

    @Test func aRedisThatIsDownIsA503NotALogout() async throws {
        let server = try await RedisServer.start()
        let store = try Support.store(url: server.url, prefix: "vm:")
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let dave = try #require(Support.cookie(try await app.testing().sendRequest(.POST, "login/dave")))
            server.stop()
            let page = try await app.testing().sendRequest(.GET, "/", headers: Support.headers(dave))
            #expect(page.status == .serviceUnavailable && page.headers.first(name: "Retry-After") == "1")
            #expect(Support.setCookie(page) == nil, "the cookie stays: the user is still signed in")
            // A handler's own store call that cannot reach Redis is a 503 too.
            let signIn = try await app.testing().sendRequest(.POST, "login/dave")
            #expect(signIn.status == .serviceUnavailable)
        }
        await store.client.close()
    }

    @Test func aCachedUnchangedSessionCostsNoRoundTrip() async throws {
        let url = try await RedisServer.sharedURL()
        let store = try Support.store(url: url, prefix: Support.uniquePrefix(), cache: true)
        let cache = try #require(store.cache)
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let login = try await app.testing().sendRequest(.POST, "login/erin")
            #expect(await eventually { cache.statistics.isTracking }, "the app runs the store's cache")
            let erin = try #require(Support.cookie(login))
            #expect(
                try await app.testing().sendRequest(.GET, "/", headers: Support.headers(erin)).body.string
                    == "erin light")
            let requests = store.client.statistics.requests
            for _ in 0..<5 {
                let page = try await app.testing().sendRequest(.GET, "/", headers: Support.headers(erin))
                #expect(page.body.string == "erin light")
            }
            #expect(store.client.statistics.requests == requests, "five pages from memory, no Redis call")
            #expect(store.statistics.loadsFromMemory >= 5)
        }
        #expect(await eventually { !cache.statistics.isTracking }, "and ends it at shutdown")
        await store.client.close()
    }

    /// A `Cookie` header with the session cookie twice (one planted for a parent domain) loads no session, and the
    /// response clears nothing: the rule lives in `SessionCookie`, so this middleware has it too.
    @Test func aSessionCookieSentTwiceLoadsNothing() async throws {
        let url = try await RedisServer.sharedURL()
        let store = try Support.store(url: url, prefix: Support.uniquePrefix())
        try await withApp(configure: { Self.configure($0, store: store) }) { app in
            let login = try await app.testing().sendRequest(.POST, "login/fay")
            let fay = try #require(Support.cookie(login))
            var twice = HTTPHeaders()
            twice.add(name: .cookie, value: "rsess=\(fay); rsess=\(fay)")
            let page = try await app.testing().sendRequest(.GET, "/", headers: twice)
            #expect(page.body.string == "anonymous")
            #expect(Support.setCookie(page) == nil)
            #expect(
                try await app.testing().sendRequest(.GET, "/", headers: Support.headers(fay)).body.string
                    == "fay light", "the session itself is untouched")
        }
        await store.client.close()
    }

    /// `req.clientAddress` believes `X-Forwarded-For` only from the proxies the application trusts, over a real
    /// connection from loopback.
    @Test func theClientAddressBelievesOnlyTrustedProxies() async throws {
        try await withApp(configure: { app in
            app.get("address") { req in req.clientAddress ?? "none" }
        }) { app in
            let forwarded: HTTPHeaders = ["X-Forwarded-For": "198.51.100.1, 203.0.113.9"]
            let direct = try await app.testing(method: .running(port: 0)).sendRequest(.GET, "address", headers: forwarded)
            #expect(["127.0.0.1", "::1"].contains(direct.body.string), "no trusted proxy: the peer, \(direct.body.string)")
            app.redisSessionTrustedProxies = try TrustedProxies("127.0.0.1, ::1")
            let behind = try await app.testing(method: .running(port: 0)).sendRequest(.GET, "address", headers: forwarded)
            #expect(behind.body.string == "203.0.113.9")
        }
    }

    /// `req.userAgent` names the browser and system for a device list.
    @Test func theUserAgentIsReadForPeople() async throws {
        try await withApp(configure: { app in
            app.get("device") { req in req.userAgent?.description ?? "none" }
        }) { app in
            let firefox = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
            let named = try await app.testing().sendRequest(.GET, "device", headers: ["User-Agent": firefox])
            #expect(named.body.string == "Firefox 133 on Linux")
            #expect(try await app.testing().sendRequest(.GET, "device").body.string == "none")
        }
    }
}
#endif  // Vapor
