import Synchronization
import Testing

@testable import RedisClient

/// Holders mode's bookkeeping without a server: when a connection re-points its tracking, and when losing it must
/// empty the cache.
@Suite struct TrackingRedirectsTests {
    let node = RedisConfiguration.Endpoint.tcp(host: "127.0.0.1", port: 7000)
    let other = RedisConfiguration.Endpoint.tcp(host: "127.0.0.1", port: 7001)

    @Test func aConnectionRepointsOncePerNewTrackerOfItsOwnNode() {
        let redirects = TrackingRedirects()
        var tracking = ConnectionWorker.TrackingState()
        #expect(tracking.repoint(redirects, endpoint: node) == nil, "no tracker yet: nothing to point at")

        redirects.point(node, at: 41)
        #expect(tracking.repoint(redirects, endpoint: node) == 41)
        tracking.redirectedTo = 41
        #expect(tracking.repoint(redirects, endpoint: node) == nil, "nothing changed since")

        // Another node's tracker moves: this connection keeps its target.
        redirects.point(other, at: 7)
        #expect(tracking.repoint(redirects, endpoint: node) == nil)

        // Its own tracker reconnected under a new ID.
        redirects.point(node, at: 58)
        #expect(tracking.repoint(redirects, endpoint: node) == 58)
        // Without a node address (nothing to match a tracker to) it never re-points.
        redirects.point(node, at: 60)
        #expect(tracking.repoint(redirects, endpoint: nil) == nil)
        #expect(tracking.repoint(nil, endpoint: node) == nil)
    }

    @Test func aNewConnectionRepointsToTheCurrentTrackerBeforeItsFirstBatch() {
        let redirects = TrackingRedirects()
        redirects.point(node, at: 41)
        var used = ConnectionWorker.TrackingState()
        _ = used.repoint(redirects, endpoint: node)
        // A reconnect starts from nothing: the new connection has no tracking on.
        var fresh = ConnectionWorker.TrackingState()
        #expect(fresh.repoint(redirects, endpoint: node) == 41)
    }

    @Test func losingAConnectionThatTrackedReadsTellsTheCacheAndOnlyThen() {
        let redirects = TrackingRedirects()
        let losses = Atomic<Int>(0)
        let token = redirects.addLossObserver { losses.add(1, ordering: .relaxed) }

        var untracked = ConnectionWorker.TrackingState()
        untracked.lost(redirects)
        #expect(losses.load(ordering: .relaxed) == 0, "a connection that never tracked loses nothing")

        var tracked = ConnectionWorker.TrackingState()
        tracked.everOn = true
        tracked.redirectedTo = 41
        tracked.lost(redirects)
        #expect(losses.load(ordering: .relaxed) == 1)
        #expect(tracked.redirectedTo == nil && !tracked.everOn, "the next connection starts from nothing")

        redirects.removeLossObserver(token)
        var again = ConnectionWorker.TrackingState()
        again.everOn = true
        again.lost(redirects)
        #expect(losses.load(ordering: .relaxed) == 1, "a removed observer hears nothing")
    }

    @Test func aNewTrackerWakesEveryConnectionToRepointWhileIdle() {
        let redirects = TrackingRedirects()
        let wakes = Atomic<Int>(0)
        for _ in 0..<3 { redirects.addWaker { wakes.add(1, ordering: .relaxed) } }
        redirects.point(node, at: 41)
        #expect(wakes.load(ordering: .relaxed) == 3)
        #expect(redirects.target(for: node) == 41 && redirects.target(for: other) == nil)
    }

    @Test func theRepointCommandIsOptInAndRedirected() {
        #expect(
            ConnectionWorker.TrackingState.command(redirectingTo: 41)
                == RedisCommand("CLIENT", "TRACKING", "ON", "REDIRECT", "41", "OPTIN").encoded)
    }

    @Test func oneCacheAtATimeClaimsTheClientsTracking() {
        let redirects = TrackingRedirects()
        #expect(redirects.claim())
        #expect(!redirects.claim(), "a second tracker would take the first one's reports")
        redirects.release()
        #expect(redirects.claim())
    }
}
