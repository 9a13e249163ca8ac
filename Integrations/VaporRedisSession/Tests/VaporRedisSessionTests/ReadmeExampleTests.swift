import RedisClient
import RedisSession
import RedisTesting
import Testing
import Vapor
import VaporRedisSession
import VaporTesting

/// The README's app, compiled and run against a real redis-server (with `testing()` instead of `execute()`).
@Suite(.timeLimit(.minutes(1))) struct ReadmeExampleTests {
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
}
