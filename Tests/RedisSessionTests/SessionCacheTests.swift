import Foundation
@_spi(Internals) import RedisClient
import Testing

@testable import RedisSession

/// The cache's rules without a server: what it serves depends only on the reports it is given. (The client is
/// never used: a pool opens no connection until its first command.)
@Suite struct SessionCacheRulesTests {
    private func makeCache(
        _ configuration: SessionCache.Configuration = .init(), clock: MonotonicClock = .system
    ) throws -> SessionCache {
        let client = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:1"))
        return SessionCache(client: client, keyPrefix: "p:", configuration: configuration, clock: clock)
    }

    private func session(user: String = "alice", bytes: Int = 8) -> Session {
        Session(
            id: SessionID(), userID: user, createdAt: Date(), lastSeenAt: Date(), version: 1,
            attributes: ["a": Array(repeating: UInt8(ascii: "x"), count: bytes)])
    }

    private func key(_ session: Session) -> [UInt8] { Array(("p:s:" + session.id.storageName).utf8) }

    @Test func servesNothingUntilTrackingIsOnAndNothingAfterItIsLost() throws {
        let cache = try makeCache()
        let loaded = session()
        #expect(cache.beginLoad(loaded.id) == nil, "no tracking yet: a load must not be stored")
        cache.apply(.tracking)
        let ticket = try #require(cache.beginLoad(loaded.id))
        cache.finishLoad(ticket, with: loaded, ttlMilliseconds: 60_000)
        #expect(cache.session(loaded.id)?.session.id == loaded.id)
        cache.apply(.disconnected(RedisError(.connectionClosed, "gone")))
        #expect(cache.session(loaded.id) == nil)
        cache.apply(.tracking)
        #expect(cache.session(loaded.id) == nil, "tracking back: the cache starts empty")
        #expect(cache.statistics.hits == 1 && cache.statistics.misses == 2)
    }

    @Test func aReportDuringALoadKeepsItsResultOutOfTheCache() throws {
        let cache = try makeCache()
        cache.apply(.tracking)
        let loaded = session()
        let ticket = try #require(cache.beginLoad(loaded.id))
        cache.apply(.keys([key(loaded)]))  // the session changed while the read was on its way
        cache.finishLoad(ticket, with: loaded, ttlMilliseconds: 60_000)
        #expect(cache.session(loaded.id) == nil)

        let gapTicket = try #require(cache.beginLoad(loaded.id))
        cache.apply(.all)  // a flush during the read
        cache.finishLoad(gapTicket, with: loaded, ttlMilliseconds: 60_000)
        #expect(cache.session(loaded.id) == nil)

        let localTicket = try #require(cache.beginLoad(loaded.id))
        cache.invalidate(userID: "bob")  // this instance's destroy-all: loads in flight are cancelled too
        cache.finishLoad(localTicket, with: loaded, ttlMilliseconds: 60_000)
        #expect(cache.session(loaded.id) == nil)
    }

    @Test func theFirstOfConcurrentLoadsStoresItsResult() throws {
        let cache = try makeCache()
        cache.apply(.tracking)
        let loaded = session()
        let first = try #require(cache.beginLoad(loaded.id))
        #expect(cache.beginLoad(loaded.id) == nil, "a second load while the first is in flight stores nothing")
        cache.finishLoad(first, with: loaded, ttlMilliseconds: 60_000)
        #expect(cache.session(loaded.id) != nil)

        let failing = try #require(cache.beginLoad(session().id))
        cache.finishLoad(failing, with: nil, ttlMilliseconds: 0)  // a failed or empty read clears its mark
        #expect(cache.beginLoad(failing.id) != nil)
    }

    @Test func reportsDropOnlyTheirSessionsAndWritesOfTheInstanceDropAtOnce() throws {
        let cache = try makeCache()
        cache.apply(.tracking)
        let (first, second, third) = (session(), session(), session(user: "bob"))
        for loaded in [first, second, third] {
            cache.finishLoad(try #require(cache.beginLoad(loaded.id)), with: loaded, ttlMilliseconds: 60_000)
        }
        cache.apply(.keys([key(first), Array("p:u:alice".utf8), Array("other:s:x".utf8)]))
        #expect(cache.session(first.id) == nil)
        #expect(cache.session(second.id) != nil)
        #expect(cache.statistics.invalidations == 1, "one report was for a session key")
        cache.invalidate(userID: "alice")
        #expect(cache.session(second.id) == nil)
        #expect(cache.session(third.id) != nil)
        cache.invalidate(third.id)
        #expect(cache.session(third.id) == nil)
    }

    @Test func neverServesPastTheExpiryOrTheMaximumAgeOrABigSession() throws {
        let time = ManualClock()
        let cache = try makeCache(.init(maximumAge: .milliseconds(300), largestCachedSession: 64), clock: time.clock)
        cache.apply(.tracking)
        let (short, long, big) = (session(), session(), session(bytes: 100))
        cache.finishLoad(try #require(cache.beginLoad(short.id)), with: short, ttlMilliseconds: 50)
        cache.finishLoad(try #require(cache.beginLoad(long.id)), with: long, ttlMilliseconds: 60_000)
        cache.finishLoad(try #require(cache.beginLoad(big.id)), with: big, ttlMilliseconds: 60_000)
        #expect(cache.session(big.id) == nil)
        let remaining = try #require(cache.session(short.id)).ttlMilliseconds
        #expect(remaining == 50)
        time.advance(by: .milliseconds(49))
        #expect(cache.session(short.id)?.ttlMilliseconds == 1)
        time.advance(by: .milliseconds(1))
        #expect(cache.session(short.id) == nil, "past the session's own expiry")
        #expect(cache.session(long.id) != nil)
        time.advance(by: .milliseconds(249))
        #expect(cache.session(long.id) != nil)
        time.advance(by: .milliseconds(1))
        #expect(cache.session(long.id) == nil, "older than the maximum age")

        // A slow reply: the TTL was read when the load began, so that is when the entry's age starts.
        let slow = session()
        let ticket = try #require(cache.beginLoad(slow.id))
        time.advance(by: .milliseconds(50))
        cache.finishLoad(ticket, with: slow, ttlMilliseconds: 50)
        #expect(cache.session(slow.id) == nil, "served past the expiry Redis reported, counting from the reply")
    }
}
