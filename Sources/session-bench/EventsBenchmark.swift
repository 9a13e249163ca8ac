import Foundation
import RedisClient
import RedisSession
import SettingsSync
import RedisTesting
import Synchronization

/// `session-bench events`: settings-event propagation (publish on one instance, applied on three others) and the
/// cost of a cached timezone lookup.
struct EventsBenchmark {
    let options: BenchOptions
    let events = 10_000

    /// Collects, for the event in flight, when each receiving instance applied it.
    final class Tracker: Sendable {
        struct State {
            var version = -1
            var started = ContinuousClock.now
            var arrivals = 0
            var samples: [Duration] = []
            var waiter: CheckedContinuation<Void, Never>?
        }
        let receivers: Int
        let state = Mutex(State())

        init(receivers: Int) { self.receivers = receivers }

        func arrived(version: Int) {
            let now = ContinuousClock.now
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard version == state.version else { return nil }
                state.samples.append(now - state.started)
                state.arrivals += 1
                guard state.arrivals == receivers else { return nil }
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }

        /// Starts timing `version`, runs `publish`, and returns once every receiver has it.
        func measure(version: Int, _ publish: () async throws -> Void) async throws {
            state.withLock {
                $0.version = version
                $0.arrivals = 0
                $0.started = .now
            }
            try await publish()
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Bool in
                    if state.arrivals == receivers { return true }
                    state.waiter = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        }

        var samples: [Duration] { state.withLock { $0.samples } }
    }

    func run() async throws -> BenchReport {
        try await options.withServer { url, _, _ in
            let configuration = try options.clientConfiguration(url: url)
            let prefix = "benchevents:"

            // Reference: bare pub/sub delivery with the same client library, no decoding, no cache.
            let bare = Tracker(receivers: 3)
            let publisher = RedisClient(configuration: configuration)
            var bareTasks: [Task<Void, Never>] = []
            for _ in 0..<3 {
                let subscription = RedisSubscriber(configuration: configuration).subscribe(to: ["bench-bare"])
                bareTasks.append(
                    Task {
                        for await event in subscription {
                            if case .message(let message) = event,
                                let version = Int(String(decoding: message.payload, as: UTF8.self))
                            {
                                bare.arrived(version: version)
                            }
                        }
                    })
            }
            try await waitForSubscribers(publisher, channel: "bench-bare", count: 3)
            for version in 0..<events {
                try await bare.measure(version: version) { try await publisher.send("PUBLISH", "bench-bare", version) }
            }
            bareTasks.forEach { $0.cancel() }

            // The real path: one publishing instance, three receiving instances, each with its own client, bus and
            // cache, the event decoded and applied.
            let tracker = Tracker(receivers: 3)
            var receivers: [(RedisClient, UserSettingsCache, Task<Void, Never>)] = []
            for _ in 0..<3 {
                let client = RedisClient(configuration: configuration)
                let bus = SessionEventBus(client: client, keyPrefix: prefix)
                let cache = UserSettingsCache(
                    settings: UserSettingsStore(client: client, keyPrefix: prefix), bus: bus,
                    observer: { notification in
                        // Called once the cache has read the record the event names: the event is applied.
                        if case .event(let event) = notification, let sequence = Int(event.origin.dropFirst(6)) {
                            tracker.arrived(version: sequence)
                        }
                    })
                receivers.append((client, cache, Task { await cache.run() }))
            }
            let bus = SessionEventBus(client: publisher, keyPrefix: prefix)
            try await waitForSubscribers(publisher, channel: bus.channel, count: 3)
            // The real flow: a settings write that publishes its event, which each receiver checks against the
            // record it names before caching it. The origin carries the sequence number the tracker waits for.
            let settings = UserSettingsStore(client: publisher, keyPrefix: prefix)
            for sequence in 0..<events {
                try await tracker.measure(version: sequence) {
                    _ = try await settings.write(
                        userID: "user\(sequence % 100)", timezone: "Europe/Paris",
                        announcing: bus.announcement(
                            .settingsChanged, user: "user\(sequence % 100)", timezone: "Europe/Paris",
                            origin: "bench-\(sequence)"))
                }
            }

            // Cached lookup: the first receiver's cache holds 100 users by now.
            let cache = receivers[0].1
            guard cache.cachedTimezone(for: "user1") != nil else {
                throw BenchOptions.Problem(description: "the cache did not hold the benchmark users")
            }
            // One task, then two at once: two requests of different users (each task half of them), as on a web
            // tier where many users are signed in; and the same user on both cores, a hot key.
            let lookups = 4_000_000
            let all = Self.users
            let halves = [Array(all[..<32]), Array(all[32...])]
            var oneTask: [Double] = []
            var twoTasks: [Double] = []
            var twoTasksSameUser: [Double] = []
            for _ in 0..<options.rounds {
                guard
                    let one = await lookupRate(
                        tasks: 1, lookups: lookups, keys: [all], { cache.cachedTimezone(for: $0) != nil }),
                    let two = await lookupRate(
                        tasks: 2, lookups: lookups, keys: halves, { cache.cachedTimezone(for: $0) != nil }),
                    let same = await lookupRate(
                        tasks: 2, lookups: lookups, keys: [all], { cache.cachedTimezone(for: $0) != nil })
                else {
                    throw BenchOptions.Problem(description: "benchmark users fell out of the cache")
                }
                oneTask.append(one)
                twoTasks.append(two)
                twoTasksSameUser.append(same)
            }

            for (client, _, task) in receivers {
                task.cancel()
                await task.value
                await client.close()
            }
            await publisher.close()

            var report = BenchReport()
            let samples = tracker.samples.map(\.milliseconds)
            let bareSamples = bare.samples.map(\.milliseconds)
            report.section(
                "propagation: a settings write on one instance until each of 3 others has read the record its event "
                    + "names, \(events) events")
            report.figure(
                "bare.p50_ms", "bare pub/sub delivery (reference), p50", percentile(bareSamples, 0.50), unit: "ms",
                digits: 3)
            report.figure(
                "bare.p99_ms", "bare pub/sub delivery (reference), p99", percentile(bareSamples, 0.99), unit: "ms",
                digits: 3)
            report.figure(
                "propagation.p50_ms", "event decoded, record read and cached, p50", percentile(samples, 0.50),
                unit: "ms", digits: 3)
            report.figure(
                "propagation.p99_ms", "event decoded, record read and cached, p99 (target < 1 ms)",
                percentile(samples, 0.99), unit: "ms", digits: 3)
            report.ratio(
                "ratio.propagation_p99_vs_bare", "p99 vs bare delivery p99",
                percentile(samples, 0.99) / percentile(bareSamples, 0.99))
            report.section("cached timezone lookup (hit), median of \(options.rounds) rounds")
            report.figure(
                "cache.lookup_ns", "cost of one lookup, 1 task (target < 60 ns)", 1e9 / median(oneTask), unit: "ns",
                digits: 1)
            report.rate("cache.lookups_per_second.c1", "lookups per second, 1 task", median(oneTask))
            report.rate("cache.lookups_per_second.c2", "lookups per second, 2 tasks, different users", median(twoTasks))
            report.ratio("ratio.lookups_c2_vs_c1", "2 tasks vs 1 (target >= 1.6x)", median(twoTasks) / median(oneTask))
            report.rate(
                "cache.lookups_per_second.c2_same_user", "lookups per second, 2 tasks, the same user at each step",
                median(twoTasksSameUser))
            return report
        }
    }

    static let users = (0..<64).map { "user\($0)" }

    private func waitForSubscribers(_ client: RedisClient, channel: String, count: Int) async throws {
        for _ in 0..<500 {
            if (try await client.send("PUBSUB", "NUMSUB", channel).array?.last?.int ?? 0) >= count { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw BenchOptions.Problem(description: "subscribers did not come up")
    }
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
}
