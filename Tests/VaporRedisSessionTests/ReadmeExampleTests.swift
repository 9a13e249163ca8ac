#if Vapor
import RedisClient
import RedisSession
import RedisTesting
import Testing
import Vapor
import VaporRedisSession
import VaporTesting

/// The README's apps, compiled and run against a real redis-server (with `testing()` instead of `execute()`).
/// One at a time: both use the store's default key prefix and sign alice in, and the first logs her out everywhere.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ReadmeExampleTests {
    @Test func theSmallestApp() async throws {
        let url = try await RedisServer.sharedURL()
        let app = try await Application.make(.testing)
        // README: begin
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        app.sessions.use(.redis(RedisSessionStore(client: client)))
        app.middleware.use(app.sessions.middleware)
        app.post("login") { req -> HTTPStatus in
            req.session.data["userID"] = "alice"  // after checking the password: a new ID, in alice's slot
            return .noContent
        }
        app.post("logout-everywhere") { req async throws -> HTTPStatus in
            guard req.hasSession, let user = req.session.data["userID"] else { return .unauthorized }
            try await req.redisSessions?.destroyAll(userID: user)  // every device, every instance
            req.session.destroy()
            return .noContent
        }
        app.get { req in req.hasSession ? req.session.data["userID"] ?? "anonymous" : "anonymous" }
        // README: end
        let login = try await app.testing().sendRequest(.POST, "login")
        let cookie = try #require(login.headers.setCookie?["rsess"])
        var headers = HTTPHeaders()
        headers.cookie = ["rsess": cookie]
        #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "alice")
        #expect(try await app.testing().sendRequest(.POST, "logout-everywhere", headers: headers).status == .noContent)
        #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "anonymous")
        try await app.asyncShutdown()
        await client.close()
    }

    @Test func theMiddlewareApp() async throws {
        let url = try await RedisServer.sharedURL()
        let app = try await Application.make(.testing)
        // README: begin
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let store = RedisSessionStore(client: client)
        app.middleware.use(app.redisSessionMiddleware(store))
        app.post("login") { req async throws -> HTTPStatus in
            try await req.redisSession.signIn(userID: "alice")  // after checking the password: a new ID
            return .noContent
        }
        app.post("theme") { req -> HTTPStatus in
            req.redisSession.update { $0["theme"] = "dark" }  // saved after the handler: this attribute only
            return .noContent
        }
        app.get { req in req.redisSession.userID ?? "anonymous" }
        // README: end
        let login = try await app.testing().sendRequest(.POST, "login")
        let cookie = try #require(login.headers.setCookie?["rsess"])
        var headers = HTTPHeaders()
        headers.cookie = ["rsess": cookie]
        #expect(try await app.testing().sendRequest(.GET, "/", headers: headers).body.string == "alice")
        #expect(try await app.testing().sendRequest(.POST, "theme", headers: headers).status == .noContent)
        let parsed = RedisSession.SessionID(cookie.string)
        let id = try #require(parsed)
        let stored = try await store.load(id: id)
        #expect(stored?["theme"] == "dark")
        try await app.asyncShutdown()
        await client.close()
    }
}
#endif  // Vapor
