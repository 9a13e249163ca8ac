import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RedisClient
import RedisSession
import RedisTesting
import Testing

@testable import WebTierApp

@Suite(.timeLimit(.minutes(2))) struct MultiInstanceTests {
    let prefix = uniquePrefix()

    @Test func aTimezoneChangeOnOneInstanceIsShownByTheOther() async throws {
        let first = try await makeApp(instanceID: "web-a", prefix: prefix)
        let (second, secondAdmin) = try await makeInstance(instanceID: "web-b", prefix: prefix)
        try await first.test(.live) { a in
            try await second.test(.live) { b in
                try await secondAdmin.test(.router) { bAdmin in
                    try await waitUntilReady(a, prefix: prefix)
                    try await waitUntilReady(b, prefix: prefix)
                    // One browser, its requests landing on either instance (as behind a load balancer).
                    var browser = Browser()
                    try await browser.signIn(a)
                    let before = try await browser.get(b, "/")
                    #expect(before.headers[.xInstanceTest] == "web-b")
                    #expect(shownTimezone(before) == "Europe/Paris", "the session made on A is found on B")

                    let form = try await browser.get(a, "/settings")
                    let token = try #require(Browser.csrf(in: form))
                    let change = try await browser.post(
                        a, "/settings", form: ["timezone": "Pacific/Auckland"],
                        headers: [.hxRequestTest: "true", .csrfTest: token])
                    #expect(change.status == .noContent)

                    var shown: String?
                    for _ in 0..<100 {
                        shown = shownTimezone(try await browser.get(b, "/"))
                        if shown == "Pacific/Auckland" { break }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    #expect(shown == "Pacific/Auckland")
                    let json = try await statistics(bAdmin)
                    #expect((json["events.applied"] as? Int ?? 0) >= 1, "B applied the event")
                    #expect((json["cache.hits"] as? Int ?? 0) >= 1, "B served the new timezone from its cache")
                }
            }
        }
    }

    @Test func logoutEverywhereOnOneInstanceEndsASessionTheOtherHasCached() async throws {
        let first = try await makeApp(instanceID: "web-a", prefix: prefix)
        let (second, secondAdmin) = try await makeInstance(instanceID: "web-b", prefix: prefix)
        try await first.test(.live) { a in
            try await second.test(.live) { b in
                try await secondAdmin.test(.router) { bAdmin in
                    try await waitUntilReady(a, prefix: prefix)
                    try await waitUntilReady(b, prefix: prefix)
                    var laptop = Browser()
                    var phone = Browser()
                    try await laptop.signIn(a)
                    try await phone.signIn(a)
                    // The sign-in comes back to B as a report, and a read it overtakes is not cached; so read until B
                    // serves the phone's session from memory.
                    var hits = 0
                    for _ in 0..<100 where hits == 0 {
                        #expect(shownTimezone(try await phone.get(b, "/")) == "Europe/Paris")
                        hits = try await statistics(bAdmin)["sessions.cache_hits"] as? Int ?? 0
                        if hits == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    }
                    #expect(hits >= 1, "B served the phone's session from memory")

                    let token = try #require(Browser.csrf(in: try await laptop.get(a, "/sessions")))
                    let out = try await laptop.post(a, "/logout-everywhere", form: ["csrf": token])
                    #expect(out.status == .seeOther)
                    // Redis reports the destroy to B in the same turn that answers A; B applies it within moments.
                    var shown = shownTimezone(try await phone.get(b, "/"))
                    for _ in 0..<100 where shown != nil {
                        try await Task.sleep(for: .milliseconds(5))
                        shown = shownTimezone(try await phone.get(b, "/"))
                    }
                    #expect(shown == nil, "B still shows the revoked session signed in")
                    #expect((try await statistics(bAdmin)["sessions.invalidations"] as? Int ?? 0) >= 1)
                }
            }
        }
    }

    private func statistics(_ client: some TestClientProtocol) async throws -> [String: Any] {
        try jsonObject(try await client.execute(uri: "/stats", method: .get))
    }

    @Test func aRedisOutageIs503NotALogoutAndRecovers() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let app = try await makeApp(instanceID: "web-outage", url: server.url, prefix: prefix)
        try await app.test(.live) { client in
            try await waitUntilReady(client, url: server.url, prefix: prefix)
            var browser = Browser()
            try await browser.signIn(client)
            #expect(shownTimezone(try await browser.get(client, "/")) == "Europe/Paris")

            server.stop()
            // Until the session cache sees its connection drop (at once: the socket closes), the page may still come
            // from memory; from then on the session read fails. Never is the visitor shown as signed out.
            var during = try await browser.get(client, "/")
            for _ in 0..<200 where during.status == .ok {
                #expect(shownTimezone(during) == "Europe/Paris", "during an outage the page was not the signed-in one")
                try await Task.sleep(for: .milliseconds(5))
                during = try await browser.get(client, "/")
            }
            #expect(during.status == .serviceUnavailable, "a session read that fails must not look like a logout")
            #expect(browser.cookies["rsess"] != nil, "the session cookie is kept during an outage")
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .serviceUnavailable)
            #expect(String(buffer: health.body) == "unavailable\n", "one word, no reasons, on the site")
            let anonymous = try await client.execute(uri: "/", method: .get)
            #expect(anonymous.status == .ok, "anonymous pages need no Redis")

            // A restarted Redis has lost its data (no persistence here): the instance recovers and the old cookie
            // is now simply unknown.
            try await server.launch()
            var recovered = false
            for _ in 0..<400 where !recovered {
                recovered = try await client.execute(uri: "/healthz", method: .get).status == .ok
                if !recovered { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(recovered, "healthz did not recover")
            let after = try await browser.get(client, "/")
            #expect(after.status == .ok)
            #expect(shownTimezone(after) == nil)
        }
    }
}
