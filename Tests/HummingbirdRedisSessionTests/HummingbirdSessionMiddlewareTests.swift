#if Hummingbird
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import HummingbirdRedisSession
import HummingbirdTesting
import RedisClient
import RedisTesting
import Testing

/// An app on Hummingbird's own `SessionMiddleware`, switched to Redis in one line: `RedisPersistDriver`.
@Suite(.timeLimit(.minutes(1))) struct HummingbirdSessionMiddlewareTests {
    struct Visitor: Codable, Sendable {
        var user: String
        var theme: String
    }

    struct Context: SessionRequestContext {
        var coreContext: CoreRequestContextStorage
        let sessions = SessionContext<Visitor>()

        init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
    }

    @Test func signInChangeTheSessionAndSignOut() async throws {
        let client = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
        let persist = RedisPersistDriver(client: client, keyPrefix: uniquePrefix())
        let router = Router(context: Context.self)
        router.add(middleware: SessionMiddleware(storage: persist))  // the one line
        router.post("/login/:user") { _, context in
            context.sessions.createSession(Visitor(user: try context.parameters.require("user"), theme: "light"))
            return Response(status: .noContent)
        }
        router.post("/theme/:theme") { _, context in
            let theme = try context.parameters.require("theme")
            context.sessions.withLockedSession { $0?.theme = theme }
            return Response(status: .noContent)
        }
        router.get("/") { _, context -> String in
            context.sessions.session.map { "\($0.user) \($0.theme)" } ?? "anonymous"
        }
        router.post("/logout") { _, context in
            context.sessions.clearSession()
            return Response(status: .noContent)
        }
        let app = Application(router: router, services: [RedisClientService(client: client)])
        try await app.test(.router) { http in
            var jar = Jar()
            jar.take(try await http.execute(uri: "/login/alice", method: .post), "SESSION_ID")
            let id = try #require(jar.cookies["SESSION_ID"])
            // Hummingbird's session storage prefixes its keys with `hbs.`; the driver adds its own prefix.
            let key = persist.keyPrefix + "hbs." + id
            // The key carries the session's expiry as its TTL (Hummingbird's default, 12 h).
            let ttl = try #require(try await client.send("PTTL", key).int)
            #expect(ttl > 11 * 3600 * 1000 && ttl <= 12 * 3600 * 1000)
            #expect(try await http.execute(uri: "/", method: .get, headers: jar.headers).text == "alice light")

            _ = try await http.execute(uri: "/theme/dark", method: .post, headers: jar.headers)
            #expect(try await http.execute(uri: "/", method: .get, headers: jar.headers).text == "alice dark")
            let kept = try #require(try await client.send("PTTL", key).int)
            #expect(kept > 0, "a change keeps the TTL")

            jar.take(try await http.execute(uri: "/logout", method: .post, headers: jar.headers), "SESSION_ID")
            #expect(try await client.send("EXISTS", key).int == 0)
            #expect(
                try await http.execute(uri: "/", method: .get, headers: [.cookie: "SESSION_ID=\(id)"]).text
                    == "anonymous")
        }
        await client.close()
    }
}
#endif  // Hummingbird
