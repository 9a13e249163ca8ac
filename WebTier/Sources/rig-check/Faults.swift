import Foundation
import RedisClient
import RedisSession
import Synchronization

/// Requests through the load balancer on a thread of their own, counted by outcome.
final class SteadyLoad: Sendable {
    struct Counts: Sendable {
        var served = 0
        var unavailable = 0
        var otherFailures = 0
    }

    private let counts = Mutex(Counts())
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(endpoint: Endpoint, cookie: String) {
        let thread = Thread { [self] in
            while running.load(ordering: .relaxed) {
                let response = try? endpoint.request("GET", "/", headers: [("Cookie", cookie)], timeout: 3)
                counts.withLock { counts in
                    switch response?.status {
                    case 200: counts.served += 1
                    case 503: counts.unavailable += 1
                    default: counts.otherFailures += 1
                    }
                }
                usleep(2_000)
            }
            finished.signal()
        }
        thread.start()
    }

    var snapshot: Counts { counts.withLock { $0 } }

    func stop() {
        running.store(false, ordering: .relaxed)
        finished.wait()
    }
}

extension Checker {
    /// Stops Redis (`SHUTDOWN`: the append-only file keeps sessions and settings, as a production Redis would),
    /// waits for the supervisor to bring it back, changes the timezone at once (while instances may still be cut
    /// off from events), and checks recovery and that nobody serves the pre-restart value.
    func redisRestart(alice: Browser, current: inout String) throws {
        let cookie = alice.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        let load = SteadyLoad(endpoint: lb, cookie: cookie)
        defer { load.stop() }
        usleep(300_000)
        let before = load.snapshot
        let old = current

        _ = try? withRedis { client in try await client.send("SHUTDOWN") }
        let stoppedAt = Date()
        var unhealthy = Set<Int>()
        while unhealthy.count < webs.count && Date().timeIntervalSince(stoppedAt) < 5 {
            for (index, web) in webs.enumerated() where (try? web.request("GET", "/healthz", timeout: 1).status) == 503
            {
                unhealthy.insert(index)
            }
            usleep(10_000)
        }
        try expect(unhealthy.count == webs.count, "only instances \(unhealthy.sorted()) reported unhealthy")

        var backAt: Date?
        while backAt == nil && Date().timeIntervalSince(stoppedAt) < 30 {
            if (try? withRedis({ client in try await client.send("PING") })) != nil {
                backAt = Date()
            } else {
                usleep(20_000)
            }
        }
        let returned = try backAt.orThrow("Redis did not come back within 30 s (is a supervisor running it?)")
        current = "Pacific/Honolulu"
        try writeTimezoneWhileInstancesMayBeCutOff(current)

        try expect(waitHealthy(webs, within: 2.5), "instances were not healthy within 2.5 s of Redis returning")
        let recovery = Date().timeIntervalSince(returned)
        let during = load.snapshot
        for web in webs {
            for _ in 0..<5 {
                var browser = alice
                let shown = try browser.get(web, "/").shownTimezone
                try expect(shown != old, "\(web) served the pre-restart timezone \(old)")
                try expect(shown == current, "\(web) shows \(shown ?? "the login page") after the restart")
            }
        }
        try expect(recovery <= 2, "recovery took \(String(format: "%.2f", recovery)) s")
        let served = during.served - before.served
        let failedRequests = (during.unavailable - before.unavailable) + (during.otherFailures - before.otherFailures)
        figures.append(
            String(
                format:
                    "Redis restart: down %.2f s; %d requests answered during the restart window, %d of them failed (%d 503, %d other); recovery %.2f s after Redis returned",
                returned.timeIntervalSince(stoppedAt), served + failedRequests, failedRequests,
                during.unavailable - before.unavailable, during.otherFailures - before.otherFailures, recovery))
        try expect(
            during.otherFailures == before.otherFailures,
            "requests failed with something other than 503 (a crash, or a 502)")
        // The listener reconnects with backoff too; later checks expect it to hear their events.
        let channel = options.prefix + "events"
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let subscribers = try withRedis { client in
                try await client.send("PUBSUB", "NUMSUB", channel).array?.last?.int ?? 0
            }
            if subscribers >= webs.count + 1 { break }
            usleep(20_000)
        }
    }

    /// The change made right after Redis returns. Not expected in the listener's log: the listener itself may still
    /// be resubscribing, and pub/sub drops what it publishes meanwhile.
    private func writeTimezoneWhileInstancesMayBeCutOff(_ timezone: String) throws {
        let count = expectedEvents.count
        try writeTimezone(timezone, origin: "rig-check-restart")
        expectedEvents.removeSubrange(count...)
    }

    /// The listener's JSON lines hold, in order, every event this run caused while the listener was subscribed.
    func listenerLog(_ path: String) throws {
        usleep(200_000)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var logged: [(String, Int)] = []
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                object["user"] as? String == options.user, let type = object["type"] as? String
            else { continue }
            logged.append((type, (object["version"] as? NSNumber)?.intValue ?? -1))
        }
        guard let first = expectedEvents.first else { return }
        // Start at this run's first event (the log may hold earlier runs).
        let start = try logged.lastIndex { $0.0 == first.0 && $0.1 == first.1 }
            .orThrow("the log lacks this run's first event \(first)")
        var cursor = start
        for event in expectedEvents {
            guard
                let found = logged[cursor...].firstIndex(where: { $0.0 == event.0 && (event.1 < 0 || $0.1 == event.1) })
            else {
                throw HTTPFailure(
                    description: "the log lacks \(event.0) (version \(event.1)) after position \(cursor - start)")
            }
            cursor = found + 1
        }
        let versions = logged[start...].filter { $0.0 == "settings.changed" }.map(\.1)
        try expect(
            zip(versions, versions.dropFirst()).allSatisfy { $0 < $1 }, "settings versions out of order: \(versions)")
    }
}
