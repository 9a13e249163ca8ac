import Foundation
import RedisClient
import RedisSession
import Vapor
import VaporRedisSession

/// The two Vapor apps `scripts/bench` compares, built the same way: `hello` answers "Hello, world!"; `session`
/// answers the signed-in user's name from a session in Redis (through the session cache, as a web tier runs it).
///
///     vapor-bench-app hello PORT
///     vapor-bench-app session PORT REDIS_URL      (POST /login signs in as alice)
///     vapor-bench-app memory PORT                 (the same page on Vapor's own in-memory sessions)
@main
struct VaporBenchApp {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 3, ["hello", "session", "memory"].contains(arguments[1]), Int(arguments[2]) != nil,
            arguments[1] != "session" || arguments.count >= 4
        else {
            FileHandle.standardError.write(
                Data("usage: vapor-bench-app hello PORT | session PORT REDIS_URL | memory PORT\n".utf8))
            exit(64)
        }
        var environment = Environment.production
        environment.arguments = ["vapor-bench-app", "serve", "--hostname", "127.0.0.1", "--port", arguments[2]]
        let app = try await Application.make(environment)
        app.logger.logLevel = .error
        var client: RedisClient?
        if arguments[1] == "hello" {
            app.get { _ in "Hello, world!" }
        } else if arguments[1] == "memory" {
            // A reference: Vapor's own in-memory sessions, the same page.
            app.sessions.use(.memory)
            signedInPage(app)
        } else {
            let redis = RedisClient(configuration: try RedisConfiguration(url: arguments[3]))
            client = redis
            let configuration = SessionStoreConfiguration(keyPrefix: "vbench:")
            let cache = SessionCache(client: redis, keyPrefix: configuration.keyPrefix)
            app.sessions.use(.redis(RedisSessionStore(client: redis, configuration: configuration, cache: cache)))
            signedInPage(app)
        }
        do {
            try await app.execute()
        } catch {
            try? await app.asyncShutdown()
            await client?.close()
            throw error
        }
        try await app.asyncShutdown()
        await client?.close()
    }

    /// The sessions middleware, `POST /login` (signs in as alice) and `GET /` (the signed-in user's page).
    static func signedInPage(_ app: Application) {
        app.middleware.use(app.sessions.middleware)
        app.post("login") { req -> HTTPStatus in
            req.session.data["userID"] = "alice"
            return .noContent
        }
        app.get { req -> String in
            guard req.hasSession, let user = req.session.data["userID"] else { return "anonymous" }
            return "Hello, \(user)!"
        }
    }
}
