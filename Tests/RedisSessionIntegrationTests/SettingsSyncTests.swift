import Foundation
import RedisClient
import RedisSession
import SettingsSync
import RedisTesting
import Synchronization
import Testing

/// One "instance" of the web tier inside the test process: its own client, bus, cache and flows.
struct Instance {
    let name: String
    let client: RedisClient
    let cache: UserSettingsCache
    let flows: SessionFlows
    let runner: Task<Void, Never>

    static func start(
        _ name: String, url: String, prefix: String, policy: UserSettingsCache.Policy = .refresh,
        observer: (@Sendable (SessionEventBus.Notification) -> Void)? = nil
    ) async throws -> Instance {
        var configuration = try RedisConfiguration(url: url)
        configuration.clientName = name
        let client = RedisClient(configuration: configuration)
        let bus = SessionEventBus(client: client, keyPrefix: prefix, subscriberName: "\(name)-sub")
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        let cache = UserSettingsCache(
            settings: settings, bus: bus, configuration: .init(policy: policy), observer: observer)
        let store = RedisSessionStore(client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix))
        let flows = SessionFlows(sessions: store, settings: settings, bus: bus, cache: cache, instanceID: name)
        let runner = Task { await cache.run() }
        guard await eventually({ cache.statistics.isSubscribed }) else {
            runner.cancel()
            await client.close()
            throw SessionError(.storeUnavailable, "instance \(name) did not subscribe")
        }
        return Instance(name: name, client: client, cache: cache, flows: flows, runner: runner)
    }

    func stop() async {
        runner.cancel()
        await runner.value
        await client.close()
    }
}

@Suite(.timeLimit(.minutes(1))) struct SettingsSyncTests {
    let prefix = "sync\(UUID().uuidString.prefix(6)):"

    private func seed(_ user: String, _ timezone: String, via instance: Instance) async throws {
        _ = try await instance.flows.settings.write(
            userID: user, timezone: timezone, announcing: nil)
    }

    @Test func aChangeOnOneInstanceIsAppliedByTheOthersWithin100ms() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        let b = try await Instance.start("B", url: url, prefix: prefix)
        let c = try await Instance.start("C", url: url, prefix: prefix)
        try await seed("alice", "Europe/Paris", via: a)
        #expect(try await c.cache.timezone(for: "alice") == "Europe/Paris")  // a miss: read and cached

        var session = try await a.flows.login(session: nil, userID: "alice")
        #expect(session["timezone"] == "Europe/Paris")
        let started = ContinuousClock.now
        let written = try await a.flows.changeTimezone(session: &session, to: "Asia/Tokyo")
        let appliedB = await eventually(timeout: .milliseconds(100)) {
            b.cache.cachedTimezone(for: "alice") == "Asia/Tokyo"
        }
        let appliedC = await eventually(timeout: .milliseconds(100)) {
            c.cache.cachedTimezone(for: "alice") == "Asia/Tokyo"
        }
        let elapsed = ContinuousClock.now - started
        #expect(appliedB && appliedC, "not applied everywhere within 100 ms (\(elapsed))")

        let hitsBefore = c.cache.statistics.hits
        let missesBefore = c.cache.statistics.misses
        #expect(try await c.cache.timezone(for: "alice") == "Asia/Tokyo")
        #expect(c.cache.statistics.hits == hitsBefore + 1, "the lookup on C was a cache hit")
        #expect(c.cache.statistics.misses == missesBefore)
        // The change applied; the login event named the version C had cached already, so it changed nothing there.
        // The counter moves just after the entry does, so a reader that saw the new entry may be a moment early.
        #expect(await eventually(timeout: .milliseconds(500)) { c.cache.statistics.eventsApplied >= 1 })
        #expect(written.version == 2)
        #expect(session["timezone"] == "Asia/Tokyo")
        let stored = try await RedisSessionStore(client: a.client, configuration: .init(keyPrefix: prefix)).load(
            id: session.id)
        #expect(stored?["timezone"] == "Asia/Tokyo", "the current session was updated")
        for instance in [a, b, c] { await instance.stop() }
    }

    @Test func aStaleEventIsIgnored() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        try await seed("bob", "America/New_York", via: a)
        try await seed("bob", "Asia/Tokyo", via: a)  // version 2
        #expect(try await a.cache.timezone(for: "bob") == "Asia/Tokyo")
        let bus = SessionEventBus(client: a.client, keyPrefix: prefix)
        let ignoredBefore = a.cache.statistics.eventsIgnored
        try await bus.publish(
            SessionEvent(kind: .settingsChanged, user: "bob", timezone: "Europe/Paris", version: 1, origin: "late"))
        #expect(await eventually { a.cache.statistics.eventsIgnored == ignoredBefore + 1 })
        #expect(a.cache.cachedTimezone(for: "bob") == "Asia/Tokyo")
        await a.stop()
    }

    /// Found by the attack on the rig: anyone who could PUBLISH set any user's timezone (even `Mars/Base`) on every
    /// instance, and a huge version hid the user's own later changes.
    @Test func aForgedEventCannotSetATimezoneOrHideLaterChanges() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        let b = try await Instance.start("B", url: url, prefix: prefix)
        try await seed("grace", "Europe/Paris", via: a)
        #expect(try await b.cache.timezone(for: "grace") == "Europe/Paris")
        let attacker = SessionEventBus(client: a.client, keyPrefix: prefix)
        let ignoredBefore = b.cache.statistics.eventsIgnored
        for version in [2, 1000, SessionEvent.maximumVersion] {
            try await attacker.publish(
                SessionEvent(
                    kind: .settingsChanged, user: "grace", timezone: "Mars/Base", version: version, origin: "x"))
        }
        #expect(await eventually { b.cache.statistics.eventsIgnored == ignoredBefore + 3 })
        #expect(try await b.cache.timezone(for: "grace") == "Europe/Paris", "the record, not the event, is served")
        var session = try await a.flows.login(session: nil, userID: "grace")
        try await a.flows.changeTimezone(session: &session, to: "Asia/Tokyo")
        #expect(
            await eventually { b.cache.cachedTimezone(for: "grace") == "Asia/Tokyo" },
            "the user's own next change still reaches every instance")
        await a.stop()
        await b.stop()
    }

    @Test func aThousandMalformedPayloadsAreSkippedAndCounted() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        var generator = SystemRandomNumberGenerator()
        var payloads: [[UInt8]] = []
        let fragments = ["{", "}", "\"v\":", "1", "\"type\"", "null", "[", "]", ",", "\"user\":\"x\"", "\u{0}", "é"]
        for index in 0..<1000 {
            if index % 2 == 0 {
                payloads.append(
                    (0..<Int.random(in: 0...64, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    })
            } else {
                payloads.append(
                    Array(
                        (0..<Int.random(in: 1...12, using: &generator)).map { _ in
                            fragments.randomElement(using: &generator) ?? ""
                        }.joined().utf8))
            }
        }
        let commands = payloads.map { RedisCommand("PUBLISH", prefix + "events", $0) }
        _ = try await a.client.pipeline(commands)
        #expect(
            await eventually { a.cache.statistics.eventsMalformed == 1000 }, "\(a.cache.statistics.eventsMalformed)")
        // Still listening: a valid event afterwards is applied.
        try await seed("carol", "UTC", via: a)
        _ = try await a.cache.timezone(for: "carol")
        var session = try await a.flows.login(session: nil, userID: "carol")
        try await a.flows.changeTimezone(session: &session, to: "Africa/Cairo")
        let b = try await Instance.start("B", url: url, prefix: prefix)
        _ = try await b.cache.timezone(for: "carol")
        try await a.flows.changeTimezone(session: &session, to: "Asia/Tokyo")
        #expect(await eventually { b.cache.cachedTimezone(for: "carol") == "Asia/Tokyo" })
        await a.stop()
        await b.stop()
    }

    @Test func killedSubscriberClearsTheCacheAndNeverServesThePreKillValue() async throws {
        let url = try await RedisServer.sharedURL()
        let served = Shared<[String]>([])
        let a = try await Instance.start("A", url: url, prefix: prefix)
        let b = try await Instance.start("B\(UUID().uuidString.prefix(4))", url: url, prefix: prefix)
        try await seed("dave", "Europe/Paris", via: a)
        #expect(try await b.cache.timezone(for: "dave") == "Europe/Paris")
        // Signed in before the cut: its `user.logged_in` event makes B read the record then, not after it
        // resubscribed (where reading the old value before the change would be right, and this test would race).
        var session = try await a.flows.login(session: nil, userID: "dave")
        let resyncsBefore = b.cache.statistics.resyncs

        // Cut B's subscriber off, and change the timezone while it is cut off.
        let list = try await a.client.send("CLIENT", "LIST", "TYPE", "pubsub").string ?? ""
        let line = try #require(list.split(separator: "\n").first { $0.contains("name=\(b.name)-sub ") })
        let id = try #require(line.split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3))
        try await a.client.send("CLIENT", "KILL", "ID", String(id))
        try await a.flows.changeTimezone(session: &session, to: "Asia/Tokyo")

        // Once B has resubscribed, it must never serve Europe/Paris again. (Between the kill and B noticing it, no
        // cache can know; the maximum age bounds that window.)
        #expect(await eventually { b.cache.statistics.resyncs == resyncsBefore + 1 }, "B did not resubscribe")
        let deadline = ContinuousClock.now + .milliseconds(800)
        while ContinuousClock.now < deadline {
            let value = try await b.cache.timezone(for: "dave")
            served.update { $0.append(value ?? "nil") }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(!served.value.contains("Europe/Paris"), "B served the pre-kill value after the kill")
        #expect(served.value.last == "Asia/Tokyo")
        #expect(b.cache.statistics.resyncs == resyncsBefore + 1, "B resubscribed once and cleared its cache")
        #expect(b.cache.statistics.isSubscribed)
        await a.stop()
        await b.stop()
    }

    @Test func anUnknownTimezoneChangesNothingAndPublishesNothing() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        let b = try await Instance.start("B", url: url, prefix: prefix)
        try await seed("erin", "Europe/Paris", via: a)
        var session = try await a.flows.login(session: nil, userID: "erin")
        try await Task.sleep(for: .milliseconds(50))
        let eventsBefore = b.cache.statistics.eventsApplied + b.cache.statistics.eventsIgnored
        for bad in ["Mars/Olympus_Mons", "", "Europe/Paris; DROP", String(repeating: "x", count: 10_000)] {
            await #expect {
                try await a.flows.changeTimezone(session: &session, to: bad)
            } throws: { error in
                (error as? FlowError)?.code == .unknownTimezone
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(
            b.cache.statistics.eventsApplied + b.cache.statistics.eventsIgnored == eventsBefore, "nothing was published"
        )
        #expect(try await a.flows.settings.read(userID: "erin") == UserSettings(timezone: "Europe/Paris", version: 1))
        #expect(session["timezone"] == "Europe/Paris")
        var anonymous = try await a.flows.sessions.create(userID: nil)
        await #expect {
            try await a.flows.changeTimezone(session: &anonymous, to: "UTC")
        } throws: { error in
            (error as? FlowError)?.code == .notSignedIn
        }
        await a.stop()
        await b.stop()
    }

    @Test func logoutAndLogoutEverywhere() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        let anonymous = try await a.flows.sessions.create(userID: nil, attributes: ["cart": "2"])
        let first = try await a.flows.login(session: anonymous, userID: "frank")
        #expect(first.id != anonymous.id, "login regenerates the session ID")
        #expect(first["cart"] == "2")
        #expect(try await a.flows.sessions.load(id: anonymous.id) == nil)
        let second = try await a.flows.login(session: nil, userID: "frank")
        try await a.flows.logout(session: first)
        #expect(try await a.flows.sessions.load(id: first.id) == nil)
        #expect(try await a.flows.sessions.load(id: second.id) != nil)
        let third = try await a.flows.login(session: nil, userID: "frank")
        #expect(try await a.flows.logoutEverywhere(userID: "frank") == 2)
        #expect(try await a.flows.sessions.load(id: third.id) == nil)
        await a.stop()
    }

    /// Found by the attack on the rig: signing in as alice over bob's session carried bob's attributes.
    @Test func signingInOverAnotherUsersSessionStartsClean() async throws {
        let url = try await RedisServer.sharedURL()
        let a = try await Instance.start("A", url: url, prefix: prefix)
        var bobs = try await a.flows.login(session: nil, userID: "bob")
        bobs["basket"] = "bob's"
        bobs["locale"] = "fr"
        try await a.flows.sessions.save(&bobs)
        let alices = try await a.flows.login(session: bobs, userID: "alice", keeping: ["locale"])
        #expect(alices.userID == "alice")
        #expect(alices["basket"] == nil, "bob's attributes did not carry over")
        #expect(alices["locale"] == "fr", "the attributes the app names are kept")
        let stored = try #require(try await a.flows.sessions.load(id: alices.id))
        #expect(stored["basket"] == nil && stored["locale"] == "fr")
        #expect(try await a.flows.sessions.load(id: bobs.id) == nil)
        await a.stop()
    }
}

/// A value shared between test tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    var value: Value { mutex.withLock { $0 } }
    func update<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
