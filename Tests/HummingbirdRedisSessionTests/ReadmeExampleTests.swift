#if Hummingbird
import Foundation
import Hummingbird
import HummingbirdRedisSession
import HummingbirdTesting
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// The README's app, compiled and run against a real redis-server (with `test` instead of `runService`).
@Suite(.timeLimit(.minutes(1))) struct ReadmeExampleTests {
    struct AppContext: RedisSessionRequestContext {
        var coreContext: CoreRequestContextStorage
        let session = RequestSession()
        init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
    }

    @Test func theSmallestApp() async throws {
        let url = try await RedisServer.sharedURL()
        // README: begin
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let kit = RedisSessionKit(
            client: client, configuration: .init(instanceID: "web-1", keyPrefix: uniquePrefix(), secureCookies: false))
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
        let app = Application(router: router, services: kit.services)
        // README: end
        try await app.test(.router) { http in
            var jar = Jar()
            #expect(try await http.execute(uri: "/", method: .get).text == "anonymous")
            jar.take(try await http.execute(uri: "/login", method: .post), "rsess")
            #expect(try await http.execute(uri: "/", method: .get, headers: jar.headers).text == "alice, theme light")
            _ = try await http.execute(uri: "/theme", method: .post, headers: jar.headers)
            #expect(try await http.execute(uri: "/", method: .get, headers: jar.headers).text == "alice, theme dark")
            let id = try #require(jar.cookies["rsess"].flatMap { SessionID($0) })
            #expect(try await kit.store.load(id: id)?["theme"] == "dark")
            _ = try await http.execute(uri: "/logout", method: .post, headers: jar.headers)
            #expect(try await kit.store.load(id: id) == nil, "log out ends the session in Redis")
        }
    }
}
#endif  // Hummingbird
