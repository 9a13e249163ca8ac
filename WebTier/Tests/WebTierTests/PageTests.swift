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

@Suite(.timeLimit(.minutes(2))) struct PageTests {
    let prefix = uniquePrefix()

    @Test func anonymousVisitorsGetTheLoginFormAndWriteNothing() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            let redis = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
            let keysBefore = try await redis.send("KEYS", prefix + "*").array?.count
            var browser = Browser()
            let page = try await browser.get(client, "/")
            #expect(page.status == .ok)
            #expect(page.headers[.xInstanceTest] == "test-1")
            #expect(String(buffer: page.body).contains("action=\"/login\""))
            #expect(shownTimezone(page) == nil)
            #expect(browser.cookies["rsess_csrf"] != nil, "the login form's CSRF cookie")
            _ = try await browser.get(client, "/")
            #expect(
                try await redis.send("KEYS", prefix + "*").array?.count == keysBefore, "anonymous views wrote to Redis")
            await redis.close()
        }
    }

    @Test func loginShowsTheUsersTimezoneAndSetsAHardenedCookie() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            let login = try await browser.signIn(client)
            #expect(login.status == .seeOther)
            #expect(login.headers[.location] == "/")
            let setCookie = login.headers[values: .setCookie].first { $0.hasPrefix("rsess=") } ?? ""
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Lax"))
            #expect(!setCookie.contains("Secure"), "Secure only when configured")
            let landing = try await browser.get(client, "/")
            #expect(landing.status == .ok)
            #expect(shownTimezone(landing) == "Europe/Paris")
            #expect(String(buffer: landing.body).contains("Hello, alice"))
        }
    }

    @Test func wrongCredentialsAre401AndMissingCSRFIs403() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            let wrong = try await browser.signIn(client, password: "not-it")
            #expect(wrong.status == .unauthorized)
            #expect(String(buffer: wrong.body).contains("Wrong user name or password"))
            let unknown = try await browser.signIn(client, user: "nobody", password: "x")
            #expect(unknown.status == .unauthorized)
            let noToken = try await browser.post(
                client, "/login", form: ["username": "alice", "password": "wonderland"])
            #expect(noToken.status == .forbidden)
            var stranger = Browser()
            let forged = try await stranger.post(
                client, "/login", form: ["username": "alice", "password": "wonderland", "csrf": "forged"])
            #expect(forged.status == .forbidden)
        }
    }

    /// Found by the attack on the rig: `x` in the cookie and `x` in the form passed, and no Origin was checked.
    @Test func loginCSRFNeedsAnIssuedTokenAndThisSitesOrigin() async throws {
        let app = try await makeApp(prefix: prefix, publicHost: "sessions.example")
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var madeUp = Browser(cookies: ["rsess_csrf": "x"])
            let forgedPair = try await madeUp.post(
                client, "/login", form: ["username": "alice", "password": "wonderland", "csrf": "x"])
            #expect(forgedPair.status == .forbidden, "a token this site never issued")

            var victim = Browser()
            let token = try #require(Browser.csrf(in: try await victim.get(client, "/")))
            let form = ["username": "alice", "password": "wonderland", "csrf": token]
            let crossSite = try await victim.post(
                client, "/login", form: form, headers: [.origin: "https://evil.example"])
            #expect(crossSite.status == .forbidden, "a POST from another site's page")
            let nullOrigin = try await victim.post(client, "/login", form: form, headers: [.origin: "null"])
            #expect(nullOrigin.status == .forbidden, "a POST from a sandboxed or data: page")
            let badReferer = try await victim.post(
                client, "/login", form: form, headers: [.referer: "https://evil.example/form"])
            #expect(badReferer.status == .forbidden)
            let sameSite = try await victim.post(
                client, "/login", form: form, headers: [.origin: "https://Sessions.Example:8443"])
            #expect(sameSite.status == .seeOther, "this site's own form signs in")
        }
        let secure = try await makeApp(prefix: prefix, secureCookies: true)
        try await secure.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            let form = try await client.execute(uri: "/", method: .get)
            let cookie = try #require(form.headers[values: .setCookie].first { $0.contains("rsess_csrf") })
            #expect(cookie.hasPrefix("__Host-rsess_csrf="), "\(cookie)")
            #expect(cookie.contains("; Path=/") && cookie.hasSuffix("; Secure") && !cookie.contains("Domain"))
        }
    }

    @Test func repeatedFailuresAreRateLimitedPerAccount() async throws {
        let app = try await makeApp(prefix: prefix, failureLimit: 3)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            for _ in 0..<3 {
                #expect(try await browser.signIn(client, user: "bob", password: "wrong").status == .unauthorized)
            }
            let throttled = try await browser.signIn(client, user: "bob", password: "builder")
            #expect(throttled.status == .tooManyRequests)
            #expect(Int(throttled.headers[.retryAfter] ?? "") ?? 0 > 0)
            // Another account is not affected.
            #expect(try await browser.signIn(client, user: "alice", password: "wonderland").status == .seeOther)
        }
    }

    /// Found by the attack on the rig: 100 parallel wrong passwords got 13-17 bcrypt checks where 5 were allowed.
    @Test func parallelGuessesGetNoMoreChecksThanTheLimit() async throws {
        let app = try await makeApp(prefix: prefix, failureLimit: 5)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var visitor = Browser()
            let token = try #require(Browser.csrf(in: try await visitor.get(client, "/")))
            let template = visitor
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        var guesser = template
                        return try await guesser.post(
                            client, "/login", form: ["username": "alice", "password": "guess", "csrf": token]
                        ).status
                    }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            let checked = statuses.filter { $0 == .unauthorized }.count
            #expect(checked <= 5, "\(checked) guesses were checked")
            #expect(statuses.allSatisfy { $0 == .unauthorized || $0 == .tooManyRequests })
        }
    }

    /// Found by the attack on the rig: five wrong passwords by anyone locked the account for its owner too, and one
    /// client could spray unknown names without limit.
    /// The test client stands in for a trusted load balancer, so each `X-Forwarded-For` below is the address that
    /// proxy saw.
    @Test func aStrangerSlowsOnlyThemselvesAndOneClientCannotSprayAccounts() async throws {
        let app = try await makeApp(
            prefix: prefix, failureLimit: 3, trustedProxies: try TrustedProxies("127.0.0.1, ::1"))
        try await app.test(.live) { client in
            try await waitUntilReady(client, prefix: prefix)
            var stranger = Browser()
            let from = { (address: String) -> HTTPFields in [.xForwardedFor: address] }
            for _ in 0..<6 {
                let status = try await stranger.signIn(
                    client, user: "alice", password: "guess", headers: from("203.0.113.9")
                ).status
                #expect(status == .unauthorized || status == .tooManyRequests)
            }
            var owner = Browser()
            let own = try await owner.signIn(client, headers: from("198.51.100.7"))
            #expect(own.status == .seeOther, "the owner signs in from her own device")

            var sprayer = Browser()
            var throttled = false
            for index in 0..<40 where !throttled {
                let status = try await sprayer.signIn(
                    client, user: "nobody\(index)", password: "guess", headers: from("203.0.113.50")
                ).status
                throttled = status == .tooManyRequests
            }
            #expect(throttled, "one client is limited across accounts")
            let redis = RedisClient(configuration: try RedisConfiguration(url: try await RedisServer.sharedURL()))
            let keys = try await redis.send("KEYS", prefix + "login:*").array?.compactMap(\.string) ?? []
            #expect(keys.count <= 40, "\(keys.count) counter keys")
            for key in keys { #expect(try await redis.send("PTTL", key).int ?? -1 > 0, "\(key) expires") }
            await redis.close()
        }
    }

    /// Found by the attack on the rig: at `maxmemory` the counter was refused and ignored (unlimited guessing), the
    /// right password answered 503 and a wrong one 401, and `/healthz` stayed 200.
    @Test func aRedisThatRefusesWritesFailsClosedAndIsReportedDegraded() async throws {
        let server = try await RedisServer.start()
        defer { server.stop() }
        let (app, operations) = try await makeInstance(url: server.url, prefix: prefix)
        try await app.test(.router) { client in
            try await operations.test(.router) { operationsClient in
                try await waitUntilReady(client, url: server.url, prefix: prefix)
                let admin = RedisClient(configuration: try RedisConfiguration(url: server.url))
                try await admin.send("CONFIG", "SET", "maxmemory-policy", "noeviction")
                try await admin.send("CONFIG", "SET", "maxmemory", "1")
                var visitor = Browser()
                let right = try await visitor.signIn(client, user: "alice", password: "wonderland")
                let wrong = try await visitor.signIn(client, user: "alice", password: "guess")
                #expect(right.status == .unauthorized && wrong.status == .unauthorized, "the same answer either way")
                let word = try await client.execute(uri: "/healthz", method: .get)
                #expect(word.status == .serviceUnavailable && String(buffer: word.body) == "degraded\n")
                let health = try await operationsClient.execute(uri: "/healthz", method: .get)
                #expect(health.status == .serviceUnavailable)
                let body = try jsonObject(health)
                #expect(body["status"] as? String == "degraded")
                #expect((body["reason"] as? String)?.contains("OOM") == true, "\(body)")
                try await admin.send("CONFIG", "SET", "maxmemory", "0")
                #expect(try await visitor.signIn(client, user: "alice", password: "wonderland").status == .seeOther)
                await admin.close()
            }
        }
    }

    @Test func settingsChangeByHTMXAndByPlainFormAndUnknownTimezone() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            try await browser.signIn(client, user: "bob", password: "builder")
            let form = try await browser.get(client, "/settings")
            #expect(form.status == .ok)
            #expect(
                String(buffer: form.body).contains(
                    "<option value=\"America/New_York\" selected>America/New_York</option>"))
            let token = try #require(Browser.csrf(in: form))

            let htmx = try await browser.post(
                client, "/settings", form: ["timezone": "Asia/Tokyo"],
                headers: [.hxRequestTest: "true", .csrfTest: token])
            #expect(htmx.status == .noContent)
            #expect(htmx.headers[.hxRefreshTest] == "true")
            #expect(shownTimezone(try await browser.get(client, "/")) == "Asia/Tokyo")

            let plain = try await browser.post(client, "/settings", form: ["timezone": "Africa/Cairo", "csrf": token])
            #expect(plain.status == .seeOther)
            #expect(plain.headers[.location] == "/")
            #expect(shownTimezone(try await browser.get(client, "/")) == "Africa/Cairo")

            let unknown = try await browser.post(client, "/settings", form: ["timezone": "Mars/Base", "csrf": token])
            #expect(unknown.status == .unprocessableContent)
            #expect(String(buffer: unknown.body).contains("Nothing was changed"))
            #expect(shownTimezone(try await browser.get(client, "/")) == "Africa/Cairo")

            let forged = try await browser.post(client, "/settings", form: ["timezone": "UTC", "csrf": "nope"])
            #expect(forged.status == .forbidden)
            #expect(shownTimezone(try await browser.get(client, "/")) == "Africa/Cairo")
        }
    }

    @Test func sessionsPageAndLogoutEverywhereInvalidateASecondSession() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var laptop = Browser()
            var phone = Browser()
            try await laptop.signIn(client)
            try await phone.signIn(client)
            let list = try await laptop.get(client, "/sessions")
            #expect(list.status == .ok)
            let page = String(buffer: list.body)
            #expect(page.contains("(this device)"))
            #expect(page.components(separatedBy: "<tr><td>").count - 1 >= 2, "both sessions are listed")
            let token = try #require(Browser.csrf(in: list))
            let out = try await laptop.post(client, "/logout-everywhere", form: ["csrf": token])
            #expect(out.status == .seeOther)
            let phoneView = try await phone.get(client, "/")
            #expect(phoneView.status == .ok)
            #expect(shownTimezone(phoneView) == nil, "the second session is signed out")
            #expect(phone.cookies["rsess"] == nil, "the stale cookie is cleared")
        }
    }

    @Test func aDeviceIsSignedOutFromTheSessionsPageByItsHandle() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            let firefox = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
            let safari =
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                + "Version/18.1 Mobile/15E148 Safari/604.1"
            var laptop = Browser(userAgent: firefox)
            var phone = Browser(userAgent: safari)
            try await laptop.signIn(client)
            try await phone.signIn(client)
            let phoneCookie = try #require(phone.cookies["rsess"])
            let list = try await laptop.get(client, "/sessions")
            let page = String(buffer: list.body)
            #expect(page.contains("Safari 18 on iOS</span>"), "devices are named by browser and system")
            #expect(page.contains("Firefox 133 on Linux</span> <strong>(this device)</strong>"))
            #expect(page.contains(firefox) && page.contains(safari), "the full user agent is still on the page")
            #expect(!page.contains(phoneCookie), "the page never holds another device's session ID")
            let handles = page.components(separatedBy: "name=\"handle\" value=\"").dropFirst().compactMap {
                $0.split(separator: "\"").first.map(String.init)
            }
            #expect(handles.count == 2)
            let phoneHandle = try #require(
                handles.first { SessionHandle($0) != nil && SessionID(phoneCookie)?.handle.text == $0 })
            let token = try #require(Browser.csrf(in: list))

            let forged = try await laptop.post(
                client, "/sessions/sign-out", form: ["csrf": "x", "handle": phoneHandle])
            #expect(forged.status == .forbidden)
            #expect(shownTimezone(try await phone.get(client, "/")) == "Europe/Paris", "a forged post changes nothing")

            let out = try await laptop.post(client, "/sessions/sign-out", form: ["csrf": token, "handle": phoneHandle])
            #expect(out.status == .seeOther && out.headers[.location] == "/sessions")
            #expect(shownTimezone(try await phone.get(client, "/")) == nil, "the phone is signed out")
            #expect(shownTimezone(try await laptop.get(client, "/")) == "Europe/Paris", "the laptop is not")
            let garbage = try await laptop.post(client, "/sessions/sign-out", form: ["csrf": token, "handle": "../x"])
            #expect(garbage.status == .seeOther, "a malformed handle is ignored")
        }
    }

    @Test func htmxIsServedByTheInstanceUnderAContentHashWhenInstalled() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("public-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = "/* stands in for htmx */ window.htmx = {};"
        try script.write(to: folder.appendingPathComponent("htmx.min.js"), atomically: true, encoding: .utf8)
        let app = try await makeApp(prefix: prefix, publicDirectory: folder.path)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            let page = String(buffer: try await client.execute(uri: "/", method: .get).body)
            let path = try #require(
                page.components(separatedBy: "<script src=\"").dropFirst().first?.split(separator: "\"").first)
            #expect(path.hasPrefix("/static/htmx.") && path.hasSuffix(".min.js"))
            #expect(page.contains("name=\"htmx-config\""))
            let asset = try await client.execute(uri: String(path), method: .get)
            #expect(asset.status == .ok)
            #expect(String(buffer: asset.body) == script)
            #expect(asset.headers[.cacheControl] == "public, max-age=31536000, immutable")
            #expect(asset.headers[.contentType]?.hasPrefix("text/javascript") == true)
        }
        // Without the file: no script on any page, and the forms still post as plain forms.
        let plain = try await makeApp(prefix: prefix, publicDirectory: folder.path + "-absent")
        try await plain.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            #expect(!String(buffer: try await client.execute(uri: "/", method: .get).body).contains("<script"))
        }
    }

    @Test func logoutEndsOnlyThisSession() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var first = Browser()
            var second = Browser()
            try await first.signIn(client)
            try await second.signIn(client)
            let token = try #require(Browser.csrf(in: try await first.get(client, "/")))
            #expect(try await first.post(client, "/logout", form: ["csrf": token]).status == .seeOther)
            #expect(shownTimezone(try await first.get(client, "/")) == nil)
            #expect(shownTimezone(try await second.get(client, "/")) == "Europe/Paris")
        }
    }

    @Test func malformedUnknownAndExpiredCookiesGiveTheAnonymousPage() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            for value in [
                "garbage", "", "%00%ff", String(repeating: "A", count: 43), "AAAA;rsess=\u{7f}",
                String(repeating: "x", count: 4000),
            ] {
                let response = try await client.execute(uri: "/", method: .get, headers: [.cookie: "rsess=\(value)"])
                #expect(response.status == .ok, "cookie \(value.prefix(20))")
                #expect(String(buffer: response.body).contains("action=\"/login\""))
            }
            let unknown = try await client.execute(
                uri: "/", method: .get, headers: [.cookie: "rsess=\(SessionID().text)"])
            #expect(unknown.status == .ok)
            #expect(
                unknown.headers[values: .setCookie].contains { $0.hasPrefix("rsess=;") && $0.contains("Max-Age=0") })
        }
    }

    /// The public `/healthz` says one word; the reasons, the cache and event counters are on the admin listener.
    @Test func healthIsOneWordAndTheDetailIsOnTheAdminListener() async throws {
        let (app, admin) = try await makeInstance(instanceID: "web-stats", prefix: prefix)
        try await app.test(.router) { client in
            try await admin.test(.router) { adminClient in
                try await waitUntilReady(client, prefix: prefix)
                let word = try await client.execute(uri: "/healthz", method: .get)
                #expect(word.status == .ok)
                #expect(String(buffer: word.body) == "ok\n")
                for hidden in ["/stats", "/metrics"] {
                    #expect(try await client.execute(uri: hidden, method: .get).status == .notFound, "\(hidden)")
                }
                let health = try await adminClient.execute(uri: "/healthz", method: .get)
                #expect(health.status == .ok)
                #expect(health.headers[.contentType] == "application/json")
                #expect(try jsonObject(health)["status"] as? String == "ok")
                let tracking = await eventually {
                    let health = try? await adminClient.execute(uri: "/healthz", method: .get)
                    return health.map { String(buffer: $0.body).contains("\"session_cache\":\"tracking\"") } ?? false
                }
                #expect(tracking, "healthz does not show the session cache tracking")
                let stats = try await adminClient.execute(uri: "/stats", method: .get)
                let json = try jsonObject(stats)
                #expect(json["instance"] as? String == "web-stats")
                for key in [
                    "cache.hits", "cache.misses", "events.applied", "events.ignored", "events.malformed",
                    "subscriber.resyncs", "events.last_lag_ms", "redis.requests", "redis.batches",
                    "redis.polled_batches", "redis.poll_hits", "sessions.cache_hits", "sessions.cache_misses",
                    "sessions.invalidations", "sessions.cache_tracking",
                ] {
                    #expect(json.keys.contains(key), "missing \(key)")
                }
                #expect(stats.headers[.xInstanceTest] == "web-stats")
            }
        }
    }
}
