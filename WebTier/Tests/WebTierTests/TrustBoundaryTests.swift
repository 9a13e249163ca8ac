import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RedisSession
import RedisTesting
import Testing

@testable import WebTierApp

/// What an instance trusts from the network. Each test is a failure or a concern an attack on the rig found, tried
/// against an instance reached directly, as an outsider on the instances' network would.
@Suite(.timeLimit(.minutes(2))) struct TrustBoundaryTests {
    let prefix = uniquePrefix()

    /// Found by the attack: an instance believed `X-Forwarded-For` from any loopback or private peer, so 40 wrong
    /// passwords, each with a new forwarded address, all got 401 and none 429. With no trusted proxy the header is
    /// ignored, and the limits count the peer.
    @Test func fortyGuessesWithRotatingForwardedForAreThrottled() async throws {
        let app = try await makeApp(prefix: prefix, failureLimit: 5)
        try await app.test(.live) { client in
            try await waitUntilReady(client, prefix: prefix)
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<40 {
                var guesser = Browser()
                let response = try await guesser.signIn(
                    client, user: "alice", password: "guess\(index)",
                    headers: [.xForwardedFor: "198.51.\(index / 200).\(index % 200 + 1)"])
                statuses.append(response.status)
            }
            let checked = statuses.filter { $0 == .unauthorized }.count
            #expect(checked <= 5, "\(checked) of 40 guesses were checked")
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 40 - checked, "\(statuses)")
        }
    }

    /// Found by the attack: five guesses sent with `X-Forwarded-For: <victim's address>` made the victim's own
    /// correct password answer 429. Behind a trusted proxy, the forged hop is left of the one the proxy appended,
    /// so the guesses count against the attacker's address.
    @Test func aForgedVictimAddressDoesNotLockTheVictimOut() async throws {
        let app = try await makeApp(
            prefix: prefix, failureLimit: 5, trustedProxies: try TrustedProxies("127.0.0.1, ::1"))
        try await app.test(.live) { client in
            try await waitUntilReady(client, prefix: prefix)
            let victim = "198.51.100.7"
            var attacker = Browser()
            var throttled = false
            for _ in 0..<8 {
                // What the proxy sends: the forged hop, then the attacker's real address.
                let status = try await attacker.signIn(
                    client, user: "alice", password: "guess", headers: [.xForwardedFor: "\(victim), 203.0.113.66"]
                ).status
                #expect(status == .unauthorized || status == .tooManyRequests)
                throttled = throttled || status == .tooManyRequests
            }
            #expect(throttled, "the attacker is limited")
            var owner = Browser()
            let own = try await owner.signIn(client, headers: [.xForwardedFor: victim])
            #expect(own.status == .seeOther, "the victim signs in from her own address")
        }
    }

    /// The device list's address is the one the limits count: the right-most untrusted hop, not the first hop,
    /// which the client writes.
    @Test func theDeviceLabelIsTheClientAddress() async throws {
        let app = try await makeApp(prefix: prefix, trustedProxies: try TrustedProxies("127.0.0.1, ::1"))
        try await app.test(.live) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            let headers: HTTPFields = [.xForwardedFor: "6.6.6.6, 203.0.113.9"]
            #expect(try await browser.signIn(client, headers: headers).status == .seeOther)
            let page = String(buffer: try await browser.get(client, "/sessions", headers: headers).body)
            #expect(page.contains("203.0.113.9"))
            #expect(!page.contains("6.6.6.6"), "the client-written hop is not shown")
        }
        let direct = try await makeApp(prefix: prefix)
        try await direct.test(.live) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            #expect(try await browser.signIn(client, headers: [.xForwardedFor: "6.6.6.6"]).status == .seeOther)
            let page = String(buffer: try await browser.get(client, "/sessions").body)
            #expect(!page.contains("6.6.6.6"), "no trusted proxy: the header is ignored")
            #expect(page.contains("127.0.0.1") || page.contains("::1"))
        }
    }

    /// Found by the attack: pages could be framed (the one-click sign-out forms too), and carried no CSP, no
    /// `nosniff`, no referrer policy. Every response carries them now, the 404 page and refusals included, and
    /// nothing that depends on the session may be stored by a cache.
    @Test func everyResponseCarriesTheSecurityHeaders() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            try await browser.signIn(client)
            let pages = [
                ("/", try await browser.get(client, "/")),
                ("/sessions", try await browser.get(client, "/sessions")),
                ("404", try await browser.get(client, "/no-such-page")),
                ("403", try await browser.post(client, "/logout", form: ["csrf": "forged"])),
                ("healthz", try await client.execute(uri: "/healthz", method: .get)),
            ]
            for (name, response) in pages {
                let policy = response.headers[.contentSecurityPolicy] ?? ""
                for directive in [
                    "default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'",
                    "object-src 'none'",
                ] {
                    #expect(policy.contains(directive), "\(name): \(directive) in \(policy)")
                }
                #expect(!policy.contains("unsafe") && !policy.contains("script-src"), "\(name): \(policy)")
                #expect(response.headers[values: .contentSecurityPolicy].count == 1, "\(name): one policy")
                #expect(response.headers[.xFrameOptionsTest] == "DENY", "\(name)")
                #expect(response.headers[.xContentTypeOptionsTest] == "nosniff", "\(name)")
                #expect(response.headers[.referrerPolicyTest] == "same-origin", "\(name)")
                #expect(response.headers[.cacheControl] == "no-store", "\(name)")
            }
            #expect(pages[2].1.status == .notFound && pages[3].1.status == .forbidden)
            // The stylesheet chose its own caching, and keeps it.
            let css = try await client.execute(uri: "/app.css", method: .get)
            #expect(css.headers[.cacheControl] == "public, max-age=86400")
            #expect(css.headers[.xContentTypeOptionsTest] == "nosniff")
        }
    }

    /// Found by the attack: `HEAD` answered 404 on every page.
    @Test func headIsAnsweredAsGetWithoutABody() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await waitUntilReady(client, prefix: prefix)
            let get = try await client.execute(uri: "/", method: .get)
            let head = try await client.execute(uri: "/", method: .head)
            #expect(head.status == .ok)
            #expect(head.body.readableBytes == 0)
            #expect(head.headers[.contentLength] == String(get.body.readableBytes))
            #expect(head.headers[.contentSecurityPolicy] != nil)
            // On the wire: the head, then the next response, and no body between them.
            let raw = try SlowClientTests.RawConnection(port: port)
            defer { raw.close() }
            raw.send("HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\nGET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            let text = await raw.readUntilClosed().text
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(text)")
            #expect(text.components(separatedBy: "\r\n\r\nok\n").count == 2, "one body, the GET's: \(text)")
        }
    }

    /// Found by the attack: an instance answered `Transfer-Encoding: xchunked` with 200, and an HTTP/1.1 request
    /// without `Host`. Checked at the instance, not behind nginx.
    @Test func ambiguousRequestsAreRefusedAtTheInstance() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await waitUntilReady(client, prefix: prefix)
            func exchange(_ request: String) async throws -> (text: String, closed: Bool) {
                let raw = try SlowClientTests.RawConnection(port: port)
                defer { raw.close() }
                raw.send(request)
                let reply = await raw.readUntilClosed()
                return (reply.text, reply.closed)
            }
            let noHost = try await exchange("GET / HTTP/1.1\r\n\r\n")
            #expect(noHost.text.hasPrefix("HTTP/1.1 400") && noHost.closed, "\(noHost)")
            #expect(noHost.text.contains("X-Frame-Options: DENY") && noHost.text.contains("frame-ancestors 'none'"))
            let twoHosts = try await exchange("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            #expect(twoHosts.text.hasPrefix("HTTP/1.1 400") && twoHosts.closed, "\(twoHosts)")
            // A body whose end is unknown, and a request behind it that must never be served.
            let smuggled = try await exchange(
                "POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(smuggled.text.hasPrefix("HTTP/1.1 501") && smuggled.closed, "\(smuggled)")
            #expect(smuggled.text.components(separatedBy: "HTTP/1.1 ").count == 2, "one response only: \(smuggled)")
            let chunked = try await exchange(
                "POST /logout HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
            #expect(chunked.text.hasPrefix("HTTP/1.1 303"), "chunked is understood: \(chunked)")
            let healthy = try await exchange("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            #expect(healthy.text.hasPrefix("HTTP/1.1 200"), "\(healthy)")
        }
    }

    /// Found by the attack: with two `rsess` cookies in one header the first one won, so a sibling subdomain could
    /// plant a session. Such a request has no session, and nothing is cleared.
    @Test func twoSessionCookiesLoadNoSession() async throws {
        let app = try await makeApp(prefix: prefix)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            try await browser.signIn(client)
            let id = try #require(browser.cookies["rsess"])
            #expect(shownTimezone(try await browser.get(client, "/")) == "Europe/Paris")
            let planted = SessionID().text
            for header in ["rsess=\(planted); rsess=\(id)", "rsess=\(id); rsess=\(planted)", "rsess=\(id); rsess=\(id)"] {
                let page = try await client.execute(uri: "/", method: .get, headers: [.cookie: header])
                #expect(shownTimezone(page) == nil, "\(header) loaded a session")
                #expect(!page.headers[values: .setCookie].contains { $0.hasPrefix("rsess=") }, "nothing cleared")
            }
            #expect(shownTimezone(try await browser.get(client, "/")) == "Europe/Paris", "the session is intact")
        }
    }

    /// Found by the attack: the session cookie kept the name `rsess` with secure cookies. It is `__Host-rsess`, which
    /// only a secure response for the whole host can set.
    @Test func secureCookiesAreHostCookies() async throws {
        let app = try await makeApp(prefix: prefix, secureCookies: true)
        try await app.test(.router) { client in
            try await waitUntilReady(client, prefix: prefix)
            var browser = Browser()
            let login = try await browser.signIn(client)
            let cookie = try #require(login.headers[values: .setCookie].first { $0.hasPrefix("__Host-rsess=") })
            #expect(cookie.contains("; Path=/") && cookie.hasSuffix("; Secure") && !cookie.contains("Domain"))
            #expect(browser.cookies["rsess"] == nil)
            #expect(shownTimezone(try await browser.get(client, "/")) == "Europe/Paris")
        }
    }
}

// Header name literals: the initialiser fails only on invalid names.
extension HTTPField.Name {
    // swift-format-ignore: NeverForceUnwrap
    static let xFrameOptionsTest = Self("X-Frame-Options")!
    // swift-format-ignore: NeverForceUnwrap
    static let xContentTypeOptionsTest = Self("X-Content-Type-Options")!
    // swift-format-ignore: NeverForceUnwrap
    static let referrerPolicyTest = Self("Referrer-Policy")!
}
