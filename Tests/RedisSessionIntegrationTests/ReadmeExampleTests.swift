import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Testing

/// The README's examples, compiled and run, so they stay true.
@Suite(.timeLimit(.minutes(1))) struct ReadmeExampleTests {
    @Test func sessionExample() async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = "readme\(UUID().uuidString.prefix(6)):"
        // README: begin sessions
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        let cookie = SessionCookie(secure: false, maxAge: store.configuration.idleTimeout)

        // At login: a new session (or regenerate the visitor's anonymous one), then set the cookie.
        var session = try await store.create(userID: "alice", attributes: ["timezone": "Europe/Paris"])
        let setCookie = cookie.header(for: session.id)

        // On the next request, whichever instance it lands on: one round trip.
        let requestCookieHeader = "rsess=\(session.id.text)"
        if let id = cookie.sessionID(fromCookieHeader: requestCookieHeader), var current = try await store.load(id: id)
        {
            current["theme"] = "dark"  // only this attribute is written
            try await store.save(&current)
            session = current
        }

        // "Log out everywhere": every session of the user, on every instance, at once.
        try await store.destroyAll(userID: "alice")
        await client.close()
        // README: end sessions
        #expect(setCookie.contains("HttpOnly"))
        #expect(session["theme"] == "dark")
    }
}
