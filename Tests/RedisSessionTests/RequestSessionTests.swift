import Foundation
import RedisClient
import RedisSession
import Testing

/// What every framework integration does around a handler (``RequestSession``'s lifecycle), on a memory store: no
/// server, no framework.
@Suite struct RequestSessionTests {
    let store = MemorySessionStore()
    let cookie = SessionCookie(maxAge: .seconds(12 * 3600))

    func request(_ header: String?) -> (RequestSession, RequestSession.Start) {
        let session = RequestSession()
        return (session, session.start(store: store, cookie: cookie, cookieHeader: header))
    }

    @Test func noCookieIsAnAnonymousVisitorWhoGetsNoCookie() {
        let (session, start) = request("theme=dark")
        #expect(start == .ready && session.current == nil)
        #expect(session.completion() == .ready(setCookie: nil))
    }

    @Test func aMalformedSessionCookieIsClearedWithoutALoad() {
        let (session, start) = request("a=1; rsess=not-a-session-id")
        #expect(start == .ready && session.current == nil)
        #expect(session.completion() == .ready(setCookie: cookie.expiredHeader()))
    }

    @Test func anotherCookieWhoseNameEndsLikeOursIsLeftAlone() {
        let (session, start) = request("xrsess=1; theme=rsess=2")
        #expect(start == .ready && session.current == nil)
        #expect(session.completion() == .ready(setCookie: nil), "only a cookie named rsess is ours to clear")
    }

    @Test func aSessionInMemoryIsReadyAndAnUnchangedOneWritesNothing() async throws {
        let stored = try await store.create(userID: "alice", attributes: ["theme": "light"])
        let (session, start) = request("rsess=\(stored.id.text)")
        #expect(start == .ready)
        #expect(session.current?["theme"] == "light" && session.userID == "alice")
        #expect(session.completion() == .ready(setCookie: nil))
    }

    @Test func aChangeIsSavedAfterTheHandlerAndKeepsTheCookie() async throws {
        let stored = try await store.create(userID: "alice", attributes: ["theme": "light"])
        let (session, _) = request("rsess=\(stored.id.text)")
        let updated: Void? = session.update { $0["theme"] = "dark" }
        #expect(updated != nil, "the visitor has a session to change")
        #expect(session.completion() == .needsSave)
        #expect(try await session.finish() == nil, "same ID: no cookie")
        #expect(try await store.load(id: stored.id)?["theme"] == "dark")
        #expect(session.current?.hasChanges == false)
    }

    @Test func anUpdateThatThrowsChangesNothing() async throws {
        struct Refused: Error {}
        let stored = try await store.create(userID: "alice", attributes: ["theme": "light"])
        let (session, _) = request("rsess=\(stored.id.text)")
        #expect(throws: Refused.self) {
            try session.update { session in
                session["theme"] = "dark"
                throw Refused()
            }
        }
        #expect(session.completion() == .ready(setCookie: nil))
        #expect(session.current?["theme"] == "light")
    }

    @Test func signInGivesANewIDItsCookieAndKillsTheOldOne() async throws {
        let anonymous = try await store.create(userID: nil, attributes: ["cart": "3"])
        let (session, _) = request("rsess=\(anonymous.id.text)")
        let signedIn = try await session.signIn(userID: "bob")
        #expect(signedIn.id != anonymous.id && signedIn["cart"] == "3")
        #expect(session.completion() == .ready(setCookie: cookie.header(for: signedIn.id)))
        #expect(try await store.load(id: anonymous.id) == nil)
    }

    @Test func signOutAndEndedClearTheCookie() async throws {
        let first = try await store.create(userID: "carol")
        let (signingOut, _) = request("rsess=\(first.id.text)")
        try await signingOut.signOut()
        #expect(signingOut.completion() == .ready(setCookie: cookie.expiredHeader()))
        #expect(try await store.load(id: first.id) == nil)

        let second = try await store.create(userID: "carol")
        let (ending, _) = request("rsess=\(second.id.text)")
        ending.ended()
        #expect(ending.completion() == .ready(setCookie: cookie.expiredHeader()))
    }

    @Test func aSessionThatEndedDuringTheRequestIsNotBroughtBack() async throws {
        let stored = try await store.create(userID: "dave")
        let (session, _) = request("rsess=\(stored.id.text)")
        session.update { $0["theme"] = "dark" }
        try await store.destroyAll(userID: "dave")  // a log out everywhere, on another instance
        #expect(try await session.finish() == cookie.expiredHeader())
        #expect(session.current == nil)
        #expect(try await store.load(id: stored.id) == nil)
    }

    @Test func aCookieForASessionThatIsGoneIsCleared() async throws {
        let stored = try await store.create(userID: "erin")
        try await store.destroy(id: stored.id)
        let (session, start) = request("rsess=\(stored.id.text)")
        // Not in memory: the middleware loads, and learns that it is gone.
        #expect(start == .load(stored.id))
        #expect(try await session.load(stored.id) == nil)
        #expect(session.current == nil)
        #expect(session.completion() == .ready(setCookie: cookie.expiredHeader()))
    }

    @Test func withoutAMiddlewareASignInThrowsStoreUnavailable() async {
        let session = RequestSession()
        #expect(session.current == nil)
        await #expect(throws: SessionError.self) { try await session.signIn(userID: "frank") }
        #expect(session.completion() == .ready(setCookie: nil))
    }

    @Test func errorsFromEveryLayerSayWhetherTheStoreWasUnavailable() {
        #expect(isStoreUnavailable(SessionError(.storeUnavailable, "down")))
        #expect(!isStoreUnavailable(SessionError(.tooLarge, "big")))
        #expect(!isStoreUnavailable(CancellationError()))
        #expect(isStoreUnavailable(RedisError(.timeout, "no reply")))
        #expect(isStoreUnavailable(RedisError(.serverError, "OOM command not allowed when used memory > 'maxmemory'")))
        #expect(isStoreUnavailable(RedisError(.serverError, "READONLY You can't write against a read only replica.")))
        #expect(
            !isStoreUnavailable(RedisError(.serverError, "WRONGTYPE Operation against a key holding the wrong kind")))
    }
}
