import Foundation
import Testing

@testable import RedisSession

@Suite struct SessionIDTests {
    @Test func newIDsAreCanonicalBase64URLAndUnique() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = SessionID()
            #expect(id.text.count == 43)
            #expect(SessionID(id.text) == id)
            seen.insert(id.text)
        }
        #expect(seen.count == 1000)
    }

    @Test(arguments: [
        "", "short", String(repeating: "A", count: 42), String(repeating: "A", count: 44),
        String(repeating: "A", count: 42) + "B",  // non-canonical: low bits set
        String(repeating: "A", count: 42) + "=", String(repeating: "+", count: 43), String(repeating: "/", count: 43),
        String(repeating: "A", count: 41) + "é", "../../../etc/passwd" + String(repeating: "A", count: 24),
        String(repeating: "A", count: 40) + "*:*",
    ])
    func rejectsEverythingElse(text: String) {
        #expect(SessionID(text) == nil)
    }

    @Test func descriptionNeverRevealsTheWholeID() {
        let id = SessionID()
        #expect(!String(describing: id).contains(id.text))
    }

    @Test func base64URLMatchesKnownVectors() {
        #expect(Base64URL.encode(Array("hello".utf8)) == "aGVsbG8")
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.encode([]) == "")
    }
}

@Suite struct SessionCookieTests {
    @Test func rendersEveryAttribute() {
        let id = SessionID()
        let plain = SessionCookie(maxAge: .seconds(1800)).header(for: id)
        #expect(plain == "rsess=\(id.text); Path=/; Max-Age=1800; HttpOnly; SameSite=Lax")
        let strict = SessionCookie(name: "sid", secure: true, domain: "example.com").header(for: id)
        #expect(strict.hasSuffix("HttpOnly; SameSite=Lax; Domain=example.com; Secure"))
        #expect(SessionCookie().expiredHeader() == "rsess=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    }

    @Test func parsesTheCookieHeaderStrictly() {
        let id = SessionID()
        let cookie = SessionCookie()
        #expect(cookie.sessionID(fromCookieHeader: "theme=dark; rsess=\(id.text); x=1") == id)
        #expect(cookie.sessionID(fromCookieHeader: "rsess=\"\(id.text)\"") == id)
        #expect(cookie.sessionID(fromCookieHeader: "xrsess=\(id.text)") == nil)
        #expect(cookie.sessionID(fromCookieHeader: "rsess=\(id.text)x") == nil)
        #expect(cookie.sessionID(fromCookieHeader: "rsess=") == nil)
        #expect(cookie.sessionID(fromCookieHeader: ";;;=;rsess") == nil)
        #expect(cookie.sessionID(fromCookieHeader: nil) == nil)
    }

    /// A secure cookie is `__Host-rsess`, which a sibling subdomain or a plain-HTTP response cannot set.
    @Test func aSecureCookieIsAHostCookie() {
        let id = SessionID()
        #expect(SessionCookie(secure: true).name == "__Host-rsess")
        #expect(SessionCookie(secure: true).header(for: id).hasPrefix("__Host-rsess=\(id.text); Path=/;"))
        #expect(SessionCookie(secure: true, domain: "example.com").name == "__Secure-rsess")
        #expect(SessionCookie(secure: true, path: "/app").name == "__Secure-rsess")
        #expect(SessionCookie(secure: false).name == "rsess")
        #expect(SessionCookie(name: "sid", secure: true).name == "sid")
    }

    /// Two cookies of the session's name (a host-only one and one planted for the parent domain) load nothing: the
    /// first one winning would let the planter choose the session.
    @Test func aCookieSentTwiceIsAmbiguous() {
        let mine = SessionID()
        let planted = SessionID()
        let cookie = SessionCookie()
        #expect(cookie.read(fromCookieHeader: "rsess=\(planted.text); rsess=\(mine.text)") == .ambiguous)
        #expect(cookie.read(fromCookieHeader: "rsess=\(mine.text); theme=dark; rsess=\(mine.text)") == .ambiguous)
        #expect(cookie.read(fromCookieHeader: "rsess=garbage; rsess=\(mine.text)") == .ambiguous)
        #expect(cookie.sessionID(fromCookieHeader: "rsess=\(planted.text);rsess=\(mine.text)") == nil)
        #expect(SessionCookie.sessionID(named: "csrf", fromCookieHeader: "csrf=\(mine.text); csrf=\(mine.text)") == nil)
        #expect(cookie.read(fromCookieHeader: "xrsess=\(planted.text); rsess=\(mine.text)") == .sessionID(mine))

        let session = RequestSession()
        #expect(
            session.start(
                store: MemorySessionStore(), cookie: cookie,
                cookieHeader: "rsess=\(planted.text); rsess=\(mine.text)") == .ready)
        #expect(session.current == nil)
        #expect(session.completion() == .ready(setCookie: nil), "nothing to clear: the planted cookie would stay")
    }
}

@Suite struct SessionValueTests {
    struct Cart: Codable, Equatable {
        var items: Int
    }

    @Test func typedAccessAndChangeTracking() throws {
        var session = Session(
            id: SessionID(), userID: nil, createdAt: .now, lastSeenAt: .now, version: 1, attributes: [:])
        #expect(!session.hasChanges)
        session["timezone"] = "Europe/Paris"
        try session.set("cart", Cart(items: 3))
        #expect(session["timezone"] == "Europe/Paris")
        #expect(try session.get("cart", as: Cart.self) == Cart(items: 3))
        #expect(session.changedKeys == ["timezone", "cart"])
        session.markSaved(version: 2)
        session["timezone"] = "Europe/Paris"
        #expect(!session.hasChanges, "setting the same value is not a change")
        session["timezone"] = nil
        #expect(session.removedKeys == ["timezone"])
        #expect(throws: SessionError.self) { try session.get("cart", as: String.self) }
        session["quote"] = "a \"b\"\n\u{1}é"
        #expect(session["quote"] == "a \"b\"\n\u{1}é")
    }
}
