import Foundation
@_spi(Internals) import RedisClient
import Testing

import RedisSession

@testable import SettingsSync

@Suite struct SessionEventTests {
    @Test func roundTripsAndIgnoresUnknownFields() throws {
        let event = SessionEvent(
            kind: .settingsChanged, user: "alice", timezone: "Asia/Tokyo", version: 7, origin: "web-2")
        guard case .success(let decoded) = SessionEvent.decode(event.encoded()) else {
            Issue.record("did not decode its own encoding")
            return
        }
        #expect(decoded == event)
        let future =
            #"{"v":1,"type":"settings.changed","user":"a","timezone":"UTC","version":2,"origin":"x","at":5,"new":{"x":1}}"#
        guard case .success(let tolerant) = SessionEvent.decode(Array(future.utf8)) else {
            Issue.record("an unknown field made the event malformed")
            return
        }
        #expect(tolerant.version == 2)
        // Redis' cjson escapes slashes; that is still JSON.
        let cjson =
            #"{"timezone":"Europe\/Paris","v":1,"user":"a","type":"settings.changed","origin":"o","version":3,"at":1795741964337}"#
        guard case .success(let fromLua) = SessionEvent.decode(Array(cjson.utf8)) else {
            Issue.record("the Lua-encoded payload did not decode")
            return
        }
        #expect(fromLua.timezone == "Europe/Paris")
    }

    @Test(arguments: [
        ("", "not a JSON event object"),
        ("[]", "not a JSON event object"),
        (#"{"v":1}"#, "missing field"),
        (#"{"v":"1","type":"x","user":"a","version":1,"origin":"o","at":1}"#, "wrong type"),
        (#"{"v":2,"type":"x","user":"a","version":1,"origin":"o","at":1}"#, "unsupported schema version 2"),
        (#"{"v":1,"type":"x","user":"","version":1,"origin":"o","at":1}"#, "empty user"),
        // Found by the attack on the rig: a float or a huge number was taken as a version.
        (#"{"v":1,"type":"x","user":"a","version":1.5e3,"origin":"o","at":1}"#, "whole number"),
        (#"{"v":1,"type":"x","user":"a","version":1500.0,"origin":"o","at":1}"#, "whole number"),
        (#"{"v":1,"type":"x","user":"a","version":9223372036854775807,"origin":"o","at":1}"#, "whole number"),
        (#"{"v":1,"type":"x","user":"a","version":9007199254740992,"origin":"o","at":1}"#, "whole number"),
        (#"{"v":1,"origin":"\"version\":7","type":"x","user":"a","version":2e1,"at":1}"#, "whole number"),
    ])
    func malformedPayloadsSayWhy(payload: String, reason: String) {
        guard case .failure(let malformed) = SessionEvent.decode(Array(payload.utf8)) else {
            Issue.record("accepted \(payload)")
            return
        }
        #expect(malformed.reason.contains(reason), "\(malformed.reason)")
    }

    @Test func timezoneValidationUsesTheIANAList() {
        #expect(UserSettings.isValidTimezone("Europe/Paris"))
        #expect(UserSettings.isValidTimezone("UTC"))
        #expect(UserSettings.isValidTimezone("Asia/Kolkata"), "a current IANA name missing from Foundation's list")
        #expect(!UserSettings.isValidTimezone("Asia/"))
        #expect(!UserSettings.isValidTimezone("Europe/Paris; DROP"))
        #expect(!UserSettings.isValidTimezone("Europe/Atlantis"))
        #expect(!UserSettings.isValidTimezone("Mars/Olympus_Mons"))
        #expect(!UserSettings.isValidTimezone("GMT+1"))
        #expect(!UserSettings.isValidTimezone(""))
        #expect(UserSettings.knownTimezones.count > 300)
    }
}

@Suite struct UserSettingsCacheTests {
    /// A cache that never talks to Redis: these tests only apply notifications and read what is cached.
    func makeCache(
        _ configuration: UserSettingsCache.Configuration, clock: MonotonicClock = .system
    ) throws -> UserSettingsCache {
        let client = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:1"))
        let bus = SessionEventBus(client: client)
        return UserSettingsCache(
            settings: UserSettingsStore(client: client), bus: bus, configuration: configuration, clock: clock)
    }

    func change(_ user: String, _ timezone: String, _ version: Int) -> SessionEventBus.Notification {
        .event(SessionEvent(kind: .settingsChanged, user: user, timezone: timezone, version: version, origin: "t"))
    }

    @Test func servesNothingUntilSubscribedAndAppliesByVersion() throws {
        let cache = try makeCache(.init())
        cache.remember("alice", UserSettings(timezone: "Asia/Tokyo", version: 2))
        #expect(cache.cachedTimezone(for: "alice") == nil, "not subscribed yet: nothing is cached")
        cache.apply(.subscribed)
        cache.remember("alice", UserSettings(timezone: "Asia/Tokyo", version: 2))
        #expect(cache.cachedTimezone(for: "alice") == "Asia/Tokyo")
        cache.apply(change("alice", "Europe/Paris", 1))
        cache.apply(change("alice", "Europe/Paris", 2))
        #expect(cache.cachedTimezone(for: "alice") == "Asia/Tokyo", "an event no newer than the entry is ignored")
        cache.remember("alice", UserSettings(timezone: "UTC", version: 1))
        #expect(cache.cachedTimezone(for: "alice") == "Asia/Tokyo", "an older record is ignored")
        let stats = cache.statistics
        #expect(stats.eventsApplied == 0)
        #expect(stats.eventsIgnored == 2)
        #expect(stats.hits == 3)
        #expect(stats.misses == 1)
    }

    /// Found by the attack on the rig: a PUBLISH set any user's timezone on every instance. An event now only drops
    /// the entry; what the cache holds comes from the settings record.
    @Test func anEventNeverSetsATimezoneOrAVersion() throws {
        let cache = try makeCache(.init())
        cache.apply(.subscribed)
        cache.remember("bob", UserSettings(timezone: "America/New_York", version: 3))
        cache.apply(change("bob", "Mars/Base", SessionEvent.maximumVersion))
        #expect(cache.cachedTimezone(for: "bob") == nil, "the entry is dropped, and Mars/Base is not cached")
        cache.apply(change("carol", "Mars/Base", 9))
        #expect(cache.cachedTimezone(for: "carol") == nil, "an event about an uncached user caches nothing")
        // The forged version is not remembered: the next real change (version 4) is cached.
        cache.remember("bob", UserSettings(timezone: "Asia/Tokyo", version: 4))
        #expect(cache.cachedTimezone(for: "bob") == "Asia/Tokyo")
    }

    @Test func withInvalidateAnEventOnlyDropsTheEntry() throws {
        let cache = try makeCache(.init(policy: .invalidate))
        cache.apply(.subscribed)
        cache.remember("dave", UserSettings(timezone: "America/New_York", version: 3))
        cache.apply(change("dave", "Asia/Tokyo", 4))
        #expect(cache.cachedTimezone(for: "dave") == nil)
        #expect(cache.statistics.eventsApplied == 1)
    }

    @Test func gapsClearEverythingAndCountResyncs() throws {
        let cache = try makeCache(.init())
        cache.apply(.subscribed)
        cache.remember("carol", UserSettings(timezone: "UTC", version: 1))
        cache.apply(.disconnected(RedisError(.connectionClosed, "killed")))
        #expect(cache.cachedTimezone(for: "carol") == nil)
        cache.remember("carol", UserSettings(timezone: "UTC", version: 1))
        #expect(cache.cachedTimezone(for: "carol") == nil, "nothing is cached during a gap")
        cache.apply(.resubscribed)
        #expect(cache.cachedTimezone(for: "carol") == nil, "the cache starts empty after a gap")
        #expect(cache.statistics.resyncs == 1)
        #expect(cache.statistics.isSubscribed)
    }

    /// A failover can lose a settings write the old master acknowledged, so the new master reuses its version for
    /// the next change. The master change is a gap (the subscription moves), and after it the reused, lower version
    /// is applied, never ignored as "not newer".
    @Test func versionsThatGoBackwardsAfterAFailoverAreApplied() throws {
        let cache = try makeCache(.init())
        cache.apply(.subscribed)
        cache.remember("erin", UserSettings(timezone: "Asia/Tokyo", version: 7))  // acknowledged, then lost
        cache.apply(.disconnected(RedisError(.notMaster, "the master changed")))
        cache.apply(.resubscribed)
        // The new master had only version 6; the next change is version 7 again, with another timezone.
        cache.apply(change("erin", "Europe/Lisbon", 7))
        cache.remember("erin", UserSettings(timezone: "Europe/Lisbon", version: 7))
        #expect(cache.cachedTimezone(for: "erin") == "Europe/Lisbon")
        // And a record older than the lost one is served too: the cache holds what the new master holds.
        cache.apply(.disconnected(RedisError(.notMaster, "another failover")))
        cache.apply(.resubscribed)
        cache.remember("erin", UserSettings(timezone: "UTC", version: 5))
        #expect(cache.cachedTimezone(for: "erin") == "UTC")
    }

    @Test func boundedLeastRecentlyUsed() throws {
        let cache = try makeCache(.init(capacity: 3))
        cache.apply(.subscribed)
        for (index, user) in ["a", "b", "c"].enumerated() {
            cache.remember(user, UserSettings(timezone: "UTC", version: index))
        }
        _ = cache.cachedTimezone(for: "a")  // a is now the most recently used
        cache.remember("d", UserSettings(timezone: "UTC", version: 1))
        #expect(cache.cachedTimezone(for: "b") == nil, "the least recently used entry was evicted")
        #expect(cache.cachedTimezone(for: "a") == "UTC")
        #expect(cache.cachedTimezone(for: "c") == "UTC")
        #expect(cache.cachedTimezone(for: "d") == "UTC")
        #expect(cache.statistics.count == 3)
        for index in 0..<1000 { cache.remember("u\(index)", UserSettings(timezone: "UTC", version: 1)) }
        #expect(cache.statistics.count == 3)
    }

    @Test func entriesExpireAfterTheMaximumAge() throws {
        let time = ManualClock()
        let cache = try makeCache(.init(maximumAge: .seconds(60)), clock: time.clock)
        cache.apply(.subscribed)
        cache.remember("dave", UserSettings(timezone: "UTC", version: 1))
        time.advance(by: .seconds(59))
        #expect(cache.cachedTimezone(for: "dave") == "UTC")
        time.advance(by: .seconds(1))
        #expect(cache.cachedTimezone(for: "dave") == nil, "a lost event cannot keep a value forever")
    }

    @Test func logoutEventsAreAppliedUnknownKindsIgnored() throws {
        let cache = try makeCache(.init())
        cache.apply(.subscribed)
        cache.apply(.event(SessionEvent(kind: .loggedOut, user: "e", version: 0, origin: "t")))
        cache.apply(.event(SessionEvent(kind: .init(rawValue: "user.renamed"), user: "e", version: 1, origin: "t")))
        cache.apply(.malformed(MalformedEvent(reason: "x", payload: [])))
        #expect(cache.statistics.eventsApplied == 1)
        #expect(cache.statistics.eventsIgnored == 1)
        #expect(cache.statistics.eventsMalformed == 1)
    }
}
