import Foundation
import Hummingbird
import HummingbirdRedisSession
import RedisClient
import RedisSession

/// The Hummingbird app of `docs/Hummingbird.md`, as its own executable: `REDIS_URL` (default
/// `redis://127.0.0.1:6379`) and `PORT` (default 8080) from the environment.
struct AppContext: RedisSessionRequestContext {
    var coreContext: CoreRequestContextStorage
    let session = RequestSession()
    init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
}

@main
struct App {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let url = environment["REDIS_URL"] ?? "redis://127.0.0.1:6379"
        guard let port = Int(environment["PORT"] ?? "8080") else {
            print("PORT must be a number")
            exit(64)
        }
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let kit = RedisSessionKit(client: client, configuration: .init(instanceID: "web-1"))
        let router = Router(context: AppContext.self)
        router.add(middleware: kit.middleware(for: AppContext.self))
        router.post("/login") { _, context in
            try await context.session.signIn(userID: "alice")  // after checking the password
            return Response(status: .seeOther, headers: [.location: "/"])
        }
        router.post("/theme") { _, context in
            context.session.update { $0["theme"] = "dark" }  // saved after the handler: this attribute only
            return Response(status: .seeOther, headers: [.location: "/"])
        }
        router.post("/logout") { _, context in
            try await context.session.signOut()  // the session ends in Redis and the cookie is cleared
            return Response(status: .seeOther, headers: [.location: "/"])
        }
        router.get("/") { _, context in
            guard let session = context.session.current, let user = session.userID else { return "anonymous" }
            return "\(user), theme \(session["theme"] ?? "light")"
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            services: kit.services)
        try await app.runService()
    }
}
