import Foundation

#if Vapor
import RedisClient
import RedisSession
import Vapor
import VaporRedisSession

/// The Vapor apps `scripts/bench` compares, built the same way: `hello` answers "Hello, world!"; the others answer
/// the signed-in user's name from a session in Redis (through the session cache, as a web tier runs it).
///
///     vapor-bench-app hello PORT
///     vapor-bench-app native PORT REDIS_URL       (the integration's middleware; POST /login signs in as alice)
///     vapor-bench-app session PORT REDIS_URL      (Vapor's sessions on the integration's driver; the same)
///     vapor-bench-app memory PORT                 (the same page on Vapor's own in-memory sessions)
@main
struct VaporBenchApp {
    static func main() async throws {
        let arguments = CommandLine.arguments
        let needsRedis = ["native", "session"].contains(arguments.count > 1 ? arguments[1] : "")
        guard arguments.count >= 3, ["hello", "native", "session", "memory"].contains(arguments[1]),
            Int(arguments[2]) != nil, !needsRedis || arguments.count >= 4
        else {
            FileHandle.standardError.write(
                Data(
                    "usage: vapor-bench-app hello PORT | native PORT REDIS_URL | session PORT REDIS_URL | memory PORT\n"
                        .utf8))
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
            let store = RedisSessionStore(
                client: redis, configuration: configuration, cache: SessionCache.Configuration())
            if arguments[1] == "native" {
                nativeSignedInPage(app, store: store)
            } else {
                app.sessions.use(.redis(store))
                signedInPage(app)
            }
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

    /// The same page on the integration's own middleware: `req.redisSession`.
    static func nativeSignedInPage(_ app: Application, store: RedisSessionStore) {
        app.middleware.use(app.redisSessionMiddleware(store))
        app.post("login") { req async throws -> HTTPStatus in
            try await req.redisSession.signIn(userID: "alice")
            return .noContent
        }
        app.get { req -> String in
            guard let user = req.redisSession.userID else { return "anonymous" }
            return "Hello, \(user)!"
        }
    }
}

#else
/// Without the `Vapor` trait there is no Vapor to measure: say how to build it.
@main
struct VaporBenchApp {
    static func main() {
        FileHandle.standardError.write(
            Data("vapor-bench-app needs the Vapor trait: swift build -c release --traits Vapor --product vapor-bench-app\n".utf8))
        exit(64)
    }
}
#endif  // Vapor
