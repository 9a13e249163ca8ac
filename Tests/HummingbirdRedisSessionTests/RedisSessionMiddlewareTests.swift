#if Hummingbird
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdRedisSession
import HummingbirdTesting
import Logging
import RedisClient
import RedisSession
import RedisTesting
import ServiceLifecycle
import SettingsSync
import Testing

/// A new Hummingbird app built on the integration, against a real redis-server: two instances of it share Redis, as
/// two web instances behind a load balancer would.
@Suite(.timeLimit(.minutes(2))) struct RedisSessionMiddlewareTests {
    /// The app: sign in, a handler that changes one attribute (and saves nothing itself), a page that reads the
    /// session, log out here and everywhere.
    static func makeApp(kit: RedisSessionKit) -> some ApplicationProtocol {
        let router = Router(context: TestContext.self)
        router.add(middleware: kit.middleware(for: TestContext.self))
        router.post("/login/:user") { _, context in
            let user = try context.parameters.require("user")
            try await context.session.signIn(userID: user, attributes: ["theme": "light"])
            return Response(status: .noContent)
        }
        router.post("/theme/:theme") { _, context in
            let theme = try context.parameters.require("theme")
            context.session.update { $0["theme"] = theme }
            return Response(status: .noContent)
        }
        router.get("/") { _, context -> String in
            guard let session = context.session.current, let user = session.userID else { return "anonymous" }
            return "\(user) \(session["theme"] ?? "-")"
        }
        router.post("/logout") { _, context in
            try await context.session.signOut()
            return Response(status: .noContent)
        }
        router.post("/logout-everywhere") { _, context in
            guard let user = context.session.userID else { return Response(status: .unauthorized) }
            try await kit.flows.logoutEverywhere(userID: user)
            context.session.ended()
            return Response(status: .noContent)
        }
        return Application(router: router, services: kit.services)
    }

    static func kit(url: String, prefix: String, instance: String, cache: Bool = true) throws -> RedisSessionKit {
        var redis = try RedisConfiguration(url: url)
        redis.connectTimeout = .milliseconds(300)
        redis.commandTimeout = .seconds(1)
        return RedisSessionKit(
            client: RedisClient(configuration: redis),
            configuration: .init(
                instanceID: instance, keyPrefix: prefix, sessionCache: cache ? .init() : nil, secureCookies: false))
    }

    @Test func signInChangeOneAttributeAndLogOutEverywhereFromAnotherInstance() async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = uniquePrefix()
        let one = try Self.kit(url: url, prefix: prefix, instance: "one")
        let two = try Self.kit(url: url, prefix: prefix, instance: "two")
        try await Self.makeApp(kit: one).test(.live) { first in
            try await Self.makeApp(kit: two).test(.live) { second in
                var jar = Jar()
                // Anonymous: no cookie, no store call, no cookie set.
                let requestsBefore = one.client.statistics.requests
                let anonymous = try await first.execute(uri: "/", method: .get)
                #expect(anonymous.text == "anonymous" && anonymous.setCookie("rsess") == nil)
                #expect(one.client.statistics.requests == requestsBefore, "no cookie, no Redis call")

                let login = try await first.execute(uri: "/login/alice", method: .post)
                #expect(login.status == .noContent)
                // The cookie is sent at sign-in only, so it lives as long as the absolute lifetime (12 h): one that
                // expired with the idle timeout would sign an active visitor out after 30 minutes.
                let setCookie = login.headers[values: .setCookie].first { $0.hasPrefix("rsess=") }
                #expect(setCookie?.contains("; Max-Age=43200;") == true)
                jar.take(login, "rsess")
                let firstID = try #require(jar.cookies["rsess"])
                #expect(try await second.execute(uri: "/", method: .get, headers: jar.headers).text == "alice light")

                // The handler only changed an attribute; the middleware saved it, and the ID stayed.
                let change = try await second.execute(uri: "/theme/dark", method: .post, headers: jar.headers)
                #expect(change.status == .noContent && change.setCookie("rsess") == nil)
                #expect(try await first.execute(uri: "/", method: .get, headers: jar.headers).text == "alice dark")
                #expect(
                    one.store.statistics.saves + two.store.statistics.saves == 1, "one save: the sign-in was a create")

                // A second device of alice's, then log out everywhere from instance two.
                var phone = Jar()
                phone.take(try await second.execute(uri: "/login/alice", method: .post), "rsess")
                let everywhere = try await second.execute(
                    uri: "/logout-everywhere", method: .post, headers: jar.headers)
                #expect(everywhere.status == .noContent && everywhere.setCookie("rsess") == "")
                // Instance one's cache hears of it from Redis; both devices are signed out there.
                #expect(
                    await eventually {
                        let laptop = try? await first.execute(uri: "/", method: .get, headers: jar.headers)
                        let other = try? await first.execute(uri: "/", method: .get, headers: phone.headers)
                        return laptop?.text == "anonymous" && other?.text == "anonymous"
                    })
                // The stale cookie is cleared on the next response.
                let stale = try await first.execute(uri: "/", method: .get, headers: jar.headers)
                #expect(stale.setCookie("rsess") == "")
                #expect(firstID != phone.cookies["rsess"])
            }
        }
    }

    @Test func signingInGivesANewIDAndTheOldOneStopsWorking() async throws {
        let url = try await RedisServer.sharedURL()
        let kit = try Self.kit(url: url, prefix: uniquePrefix(), instance: "one")
        try await Self.makeApp(kit: kit).test(.live) { client in
            var jar = Jar()
            jar.take(try await client.execute(uri: "/login/bob", method: .post), "rsess")
            let before = try #require(jar.cookies["rsess"])
            let again = try await client.execute(uri: "/login/carol", method: .post, headers: jar.headers)
            jar.take(again, "rsess")
            #expect(jar.cookies["rsess"] != before, "a change of user gets a new ID")
            #expect(try await client.execute(uri: "/", method: .get, headers: jar.headers).text == "carol light")
            let old = try await client.execute(uri: "/", method: .get, headers: [.cookie: "rsess=\(before)"])
            #expect(old.text == "anonymous" && old.setCookie("rsess") == "")
            let logout = try await client.execute(uri: "/logout", method: .post, headers: jar.headers)
            #expect(logout.setCookie("rsess") == "")
            #expect(try await client.execute(uri: "/", method: .get, headers: jar.headers).text == "anonymous")
        }
    }

    @Test func aMalformedCookieCostsNoStoreCall() async throws {
        let url = try await RedisServer.sharedURL()
        let kit = try Self.kit(url: url, prefix: uniquePrefix(), instance: "one")
        try await Self.makeApp(kit: kit).test(.live) { client in
            let before = kit.client.statistics.requests
            for cookie in ["rsess=short", "rsess=" + String(repeating: "A", count: 44), "rsess=%00%ff", "other=1"] {
                let response = try await client.execute(uri: "/", method: .get, headers: [.cookie: cookie])
                #expect(response.text == "anonymous")
                #expect((response.setCookie("rsess") == "") == cookie.hasPrefix("rsess="), "\(cookie)")
            }
            #expect(kit.client.statistics.requests == before)
        }
    }

    @Test func aRedisThatIsDownIsA503NotALogout() async throws {
        let server = try await RedisServer.start()
        let kit = try Self.kit(url: server.url, prefix: uniquePrefix(), instance: "one", cache: false)
        try await Self.makeApp(kit: kit).test(.live) { client in
            var jar = Jar()
            jar.take(try await client.execute(uri: "/login/dave", method: .post), "rsess")
            #expect(try await client.execute(uri: "/", method: .get, headers: jar.headers).text == "dave light")
            server.stop()
            let down = try await client.execute(uri: "/", method: .get, headers: jar.headers)
            #expect(down.status == .serviceUnavailable)
            #expect(down.setCookie("rsess") == nil, "the cookie stays: the user is still signed in")
            let change = try await client.execute(uri: "/theme/blue", method: .post, headers: jar.headers)
            #expect(change.status == .serviceUnavailable)
        }
    }

    /// The kit's setup value decides whose `X-Forwarded-For` counts, and secure cookies are `__Host-` cookies.
    @Test func theKitBelievesOnlyTrustedProxiesAndNamesSecureCookiesHostCookies() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let plain = RedisSessionKit(client: client, configuration: .init(instanceID: "web-1"))
        let forwarded: HTTPFields = [HTTPField.Name("X-Forwarded-For")!: "198.51.100.1, 203.0.113.9"]
        #expect(plain.clientAddress(peer: "10.0.0.2", headers: forwarded) == "10.0.0.2", "no trusted proxy by default")
        #expect(plain.cookie.name == "__Host-rsess")
        let behind = RedisSessionKit(
            client: client,
            configuration: .init(instanceID: "web-1", trustedProxies: try TrustedProxies("10.0.0.0/8")))
        #expect(behind.clientAddress(peer: "10.0.0.2", headers: forwarded) == "203.0.113.9")
        #expect(behind.clientAddress(peer: "192.0.2.4", headers: forwarded) == "192.0.2.4")
        await client.close()
    }

    /// `request.userAgent` names the browser and system for a device list.
    @Test func theUserAgentIsReadForPeople() async throws {
        let router = Router()
        router.get("/device") { request, _ in request.userAgent?.description ?? "none" }
        try await Application(router: router).test(.router) { client in
            let firefox = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
            let named = try await client.execute(uri: "/device", method: .get, headers: [.userAgent: firefox])
            #expect(String(buffer: named.body) == "Firefox 133 on Linux")
            #expect(String(buffer: try await client.execute(uri: "/device", method: .get).body) == "none")
        }
    }
}
#endif  // Hummingbird
