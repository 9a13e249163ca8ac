import Foundation
import RedisClient
import RedisSession
import SettingsSync
import Synchronization

/// `rig-check`: the end-to-end checker of the multi-instance rig (process twin or docker compose).
///
/// Drives real HTTP against three instances and the load balancer, and Redis directly for the faults. Prints one
/// line per check and, at the end, the figures and a `N passed, M failed` line; exits non-zero on any failure.
@main
struct RigCheck {
    static let usage = """
        USAGE: rig-check --lb URL --web URL --web URL --web URL --admin URL --admin URL --admin URL --redis-url URL
                         [--prefix P] [--listener-log PATH]
                         [--redis-restart shutdown|none] [--changes N] [--keys-file FILE --reload-pid PID ...]
                         [--affinity]
               rig-check --topology sentinel|cluster --state DIR [--json FILE] [--prefix P]

        --admin gives each instance's admin listener (/stats), in the order of --web.
        --affinity: the load balancer routes by the session cookie (docker/rig up --affinity, and the compose rigs):
        a signed-in user's requests must stay on one instance, and requests without a cookie still spread.
        --keys-file FILE and --reload-pid PID (one per instance): rotate the session encryption keys under load by
        rewriting FILE and sending SIGHUP, as an operator would.

        Checks, in order: the load balancer hides /stats and /metrics, pages refuse framing, nginx names no
        version; X-Forwarded-For sent straight to an instance chooses no address (the login limit holds); sign-in on
        web 1; an htmx timezone change on web 2 (204 + HX-Refresh); web 3 shows it
        within 1 s from its cache (its /stats: event applied, cache hit, no miss); the load balancer spreads requests
        and every instance agrees; an unknown timezone changes nothing; logout everywhere signs a second session out
        on every instance; propagation latency over N changes; a Redis restart under steady load (unhealthy, then
        healthy within 2 s, no pre-restart timezone served); a subscriber cut (CLIENT KILL); the listener's log
        holds every event in order.

        --redis-restart shutdown  sends SHUTDOWN to Redis and expects a supervisor (the rig, or compose's restart
                                  policy) to bring it back; none skips that check.
        --topology sentinel   the process rig's Sentinel faults, with its ports from DIR/env (docker/.rig): kill -9 of
                              the master and SENTINEL FAILOVER under load through the load balancer
        --topology cluster    the process rig's Cluster faults: a reshard, CLUSTER FAILOVER, a fourth primary given
                              100 slots and kill -9 of alice's primary, under load
        --json FILE           with --topology: also writes the figures there
        """

    struct Options {
        var lb: Endpoint?
        var webs: [Endpoint] = []
        var admins: [Endpoint] = []
        var keysFile: String?
        var reloadPIDs: [Int32] = []
        var redisURL = "redis://127.0.0.1:6379"
        var prefix = "rsess:"
        var listenerLog: String?
        var restart = "shutdown"
        var changes = 50
        var user = "alice"
        var password = "wonderland"
        var topology = "standalone"
        var state: String?
        var json: String?
        var affinity = false
    }

    static func main() {
        var options = Options()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        do {
            while let argument = arguments.next() {
                func value() throws -> String {
                    guard let next = arguments.next() else {
                        throw HTTPFailure(description: "\(argument) needs a value")
                    }
                    return next
                }
                switch argument {
                case "--lb": options.lb = try Endpoint(url: try value())
                case "--web": options.webs.append(try Endpoint(url: try value()))
                case "--admin": options.admins.append(try Endpoint(url: try value()))
                case "--keys-file": options.keysFile = try value()
                case "--reload-pid":
                    let text = try value()
                    guard let pid = Int32(text), pid > 0 else { throw HTTPFailure(description: "--reload-pid \(text)") }
                    options.reloadPIDs.append(pid)
                case "--redis-url": options.redisURL = try value()
                case "--prefix": options.prefix = try value()
                case "--listener-log": options.listenerLog = try value()
                case "--redis-restart": options.restart = try value()
                case "--changes": options.changes = Int(try value()) ?? 50
                case "--topology": options.topology = try value()
                case "--state": options.state = try value()
                case "--json": options.json = try value()
                case "--affinity": options.affinity = true
                case "-h", "--help":
                    say(usage)
                    exit(0)
                default: throw HTTPFailure(description: "unknown argument '\(argument)'")
                }
            }
            switch options.topology {
            case "standalone":
                guard options.lb != nil, options.webs.count == 3, options.admins.count == 3 else {
                    throw HTTPFailure(description: "give --lb, exactly three --web and their three --admin")
                }
                guard options.json == nil, options.state == nil else {
                    throw HTTPFailure(description: "--state and --json go with --topology sentinel or cluster")
                }
                _ = try RedisConfiguration(url: options.redisURL)
            case "sentinel", "cluster":
                guard options.state != nil else {
                    throw HTTPFailure(
                        description: "--topology \(options.topology) needs --state DIR (the rig's docker/.rig)")
                }
                guard SessionKeys.isValidPrefix(options.prefix) else {
                    throw HTTPFailure(description: "a key prefix cannot contain '{' or '}'")
                }
            default:
                throw HTTPFailure(
                    description: "--topology must be standalone, sentinel or cluster, not '\(options.topology)'")
            }
        } catch {
            FileHandle.standardError.write(Data("rig-check: \(error)\n\n\(usage)\n".utf8))
            exit(64)
        }
        if let state = options.state {
            exit(FaultRun.run(topology: options.topology, state: state, json: options.json, prefix: options.prefix))
        }
        let checker = Checker(options: options)
        exit(checker.runAll() ? 0 : 1)
    }
}

/// One run of every check.
final class Checker {
    let options: RigCheck.Options
    let lb: Endpoint
    let webs: [Endpoint]
    /// The instances' admin listeners, in the order of ``webs``.
    let admins: [Endpoint]
    var passed = 0
    var failed = 0
    var figures: [String] = []
    var instanceNames: [String] = []
    /// What the listener must have seen, in order: (type, version).
    var expectedEvents: [(String, Int)] = []

    init(options: RigCheck.Options) {
        self.options = options
        self.lb = options.lb ?? options.webs[0]
        self.webs = options.webs
        self.admins = options.admins
    }

    func check(_ name: String, _ body: () throws -> Void) {
        let started = Date()
        do {
            try body()
            passed += 1
            say("ok    \(name) (\(String(format: "%.2f", Date().timeIntervalSince(started))) s)")
        } catch {
            failed += 1
            say("FAIL  \(name): \(error)")
        }
    }

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw HTTPFailure(description: message()) }
    }

    func withRedis<T: Sendable>(_ body: @escaping @Sendable (RedisClient) async throws -> T) throws -> T {
        let url = options.redisURL
        return try blocking {
            var configuration = try RedisConfiguration(url: url)
            configuration.poolSize = 1
            configuration.connectTimeout = .milliseconds(300)
            let client = RedisClient(configuration: configuration)
            do {
                let value = try await body(client)
                await client.close()
                return value
            } catch {
                await client.close()
                throw error
            }
        }
    }

    /// Sets the user's timezone directly in Redis, the way a settings write does (versioned, event published).
    @discardableResult
    func writeTimezone(_ timezone: String, origin: String) throws -> Int {
        let user = options.user
        let prefix = options.prefix
        let record = try withRedis { client in
            let bus = SessionEventBus(client: client, keyPrefix: prefix)
            return try await UserSettingsStore(client: client, keyPrefix: prefix).write(
                userID: user, timezone: timezone,
                announcing: bus.announcement(.settingsChanged, user: user, timezone: timezone, origin: origin))
        }
        expectedEvents.append(("settings.changed", record.version))
        return record.version
    }

    func stats(_ endpoint: Endpoint) throws -> [String: Any] {
        let response = try endpoint.request("GET", "/stats")
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
            throw HTTPFailure(description: "no stats from \(endpoint)")
        }
        return object
    }

    func number(_ stats: [String: Any], _ key: String) -> Int { (stats[key] as? NSNumber)?.intValue ?? -1 }

    func waitHealthy(_ endpoints: [Endpoint], within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if endpoints.allSatisfy({ (try? $0.request("GET", "/healthz", timeout: 1).status) == 200 }) { return true }
            usleep(20_000)
        }
        return false
    }

    func runAll() -> Bool {
        say(
            "rig-check: lb \(lb), instances \(webs.map(\.description).joined(separator: " ")), redis \(options.redisURL)"
        )
        var alice = Browser()
        var current = "Europe/Paris"

        check("every instance is healthy") {
            try expect(waitHealthy(webs + [lb], within: 30), "not all instances answered /healthz with 200 within 30 s")
            instanceNames = try webs.map { try $0.request("GET", "/healthz").header("X-Instance") ?? "?" }
            if options.listenerLog != nil {
                // Under compose the listener may start after the instances: wait until it hears the channel too.
                let channel = options.prefix + "events"
                let deadline = Date().addingTimeInterval(30)
                var subscribers = 0
                while subscribers < webs.count + 1 && Date() < deadline {
                    subscribers = try withRedis { client in
                        try await client.send("PUBSUB", "NUMSUB", channel).array?.last?.int ?? 0
                    }
                    if subscribers < webs.count + 1 { usleep(50_000) }
                }
                try expect(subscribers >= webs.count + 1, "the listener is not subscribed to \(channel)")
            }
            // A known starting point, whatever earlier runs left behind.
            try writeTimezone(current, origin: "rig-check")
        }

        check("the load balancer hides /stats and /metrics, pages refuse framing, nginx names no version") {
            for path in ["/stats", "/metrics"] {
                let status = try lb.request("GET", path).status
                try expect(status == 404, "\(path) through the load balancer answered \(status)")
            }
            let page = try lb.request("GET", "/")
            let policy = page.header("Content-Security-Policy") ?? ""
            try expect(policy.contains("frame-ancestors 'none'"), "the page's CSP is '\(policy)'")
            try expect(page.header("X-Frame-Options") == "DENY", "X-Frame-Options is \(page.header("X-Frame-Options") ?? "absent")")
            let server = page.header("Server") ?? ""
            try expect(!server.contains("/"), "the load balancer names its version: \(server)")
            let health = try lb.request("GET", "/healthz")
            try expect(health.body == "ok\n", "the public /healthz says '\(health.body)'")
            try expect(try admins[0].request("GET", "/stats").status == 200, "no /stats on the admin listener")
        }

        check("X-Forwarded-For sent straight to an instance chooses no address") {
            // An account nobody has, so the back-off falls on nobody's sign-in; what it costs this client's
            // per-client count is given back by its later successful sign-ins.
            let account = "rig-check-nobody-\(UInt32.random(in: 0...UInt32.max))"
            var statuses: [Int] = []
            for hop in 1...7 {
                var guesser = Browser()
                let form = try guesser.get(webs[0], "/")
                let response = try guesser.post(
                    webs[0], "/login", form: ["username": account, "password": "guess", "csrf": form.csrfToken ?? ""],
                    headers: [("X-Forwarded-For", "198.51.100.\(hop)")])
                statuses.append(response.status)
            }
            try expect(
                statuses.filter { $0 == 401 }.count <= 5 && statuses.contains(429),
                "rotating X-Forwarded-For got \(statuses): the limit counted the forged addresses")
        }

        check("sign in through instance 1") {
            let response = try alice.signIn(webs[0], user: options.user, password: options.password)
            try expect(response.status == 303, "login answered \(response.status)")
            try expect(alice.cookies["rsess"] != nil, "no session cookie")
            expectedEvents.append(("user.logged_in", -1))
            let landing = try alice.get(webs[0], "/")
            try expect(
                landing.shownTimezone == current, "instance 1 shows \(landing.shownTimezone ?? "the login page")")
        }

        check("htmx timezone change through instance 2, shown by instance 3 from its cache within 1 s") {
            let form = try alice.get(webs[1], "/settings")
            let token = try form.csrfToken.orThrow("no CSRF token on /settings")
            let before = try stats(admins[2])
            current = "Asia/Tokyo"
            let started = Date()
            let change = try alice.post(
                webs[1], "/settings", form: ["timezone": current],
                headers: [("HX-Request", "true"), ("X-CSRF-Token", token)])
            try expect(change.status == 204, "the htmx change answered \(change.status)")
            try expect(change.header("HX-Refresh") == "true", "no HX-Refresh: true")
            expectedEvents.append(("settings.changed", -1))
            var shown: String?
            while Date().timeIntervalSince(started) < 1 {
                let afterEvent = try stats(admins[2])
                if number(afterEvent, "events.applied") > number(before, "events.applied") { break }
                usleep(2_000)
            }
            let viewStats = try stats(admins[2])
            shown = try alice.get(webs[2], "/").shownTimezone
            let elapsed = Date().timeIntervalSince(started)
            let after = try stats(admins[2])
            try expect(shown == current, "instance 3 shows \(shown ?? "nothing") after \(elapsed) s")
            try expect(elapsed < 1, "took \(elapsed) s")
            try expect(
                number(after, "events.applied") > number(before, "events.applied"), "instance 3 applied no event")
            try expect(number(after, "cache.hits") > number(viewStats, "cache.hits"), "the view was not a cache hit")
            try expect(
                number(after, "cache.misses") == number(viewStats, "cache.misses"), "the view read settings from Redis")
        }

        if options.affinity {
            check("the load balancer keeps a session on one instance and spreads requests without one") {
                var seen = Set<String>()
                for _ in 0..<9 {
                    let response = try alice.get(lb, "/")
                    try expect(response.status == 200, "status \(response.status)")
                    try expect(response.shownTimezone == current, "the page shows \(response.shownTimezone ?? "nothing")")
                    seen.insert(response.header("X-Instance") ?? "?")
                }
                try expect(seen.count == 1, "one session's requests landed on \(seen.sorted())")
                var anonymous = Set<String>()
                for _ in 0..<12 {
                    let response = try lb.request("GET", "/healthz")
                    anonymous.insert(response.header("X-Instance") ?? "?")
                }
                try expect(anonymous.count >= 2, "requests without a session all landed on \(anonymous.sorted())")
            }
        } else {
            check("the load balancer spreads consecutive requests and every instance agrees") {
                var seen = Set<String>()
                for _ in 0..<9 {
                    let response = try alice.get(lb, "/")
                    try expect(response.status == 200, "status \(response.status)")
                    try expect(
                        response.shownTimezone == current,
                        "\(response.header("X-Instance") ?? "?") shows \(response.shownTimezone ?? "nothing")")
                    seen.insert(response.header("X-Instance") ?? "?")
                }
                try expect(seen.count >= 2, "every request landed on \(seen)")
            }
        }

        check("an unknown timezone changes nothing anywhere") {
            let token = try alice.get(webs[0], "/settings").csrfToken.orThrow("no CSRF token")
            let response = try alice.post(webs[0], "/settings", form: ["timezone": "Mars/Olympus_Mons", "csrf": token])
            try expect(response.status == 422, "answered \(response.status)")
            usleep(100_000)
            for web in webs {
                let shown = try alice.get(web, "/").shownTimezone
                try expect(shown == current, "\(web) shows \(shown ?? "nothing")")
            }
        }

        check("logout everywhere signs a second session out on every instance") {
            var phone = Browser()
            let login = try phone.signIn(webs[2], user: options.user, password: options.password)
            try expect(login.status == 303, "second sign-in answered \(login.status)")
            expectedEvents.append(("user.logged_in", -1))
            // Every instance serves the phone's session, so each holds it in its session cache.
            for web in webs {
                var copy = phone
                try expect(try copy.get(web, "/").shownTimezone != nil, "\(web) does not show the phone signed in")
            }
            var laptop = Browser()
            try expect(
                try laptop.signIn(webs[1], user: options.user, password: options.password).status == 303,
                "third sign-in")
            expectedEvents.append(("user.logged_in", -1))
            let token = try laptop.get(webs[1], "/sessions").csrfToken.orThrow("no CSRF token on /sessions")
            let out = try laptop.post(webs[1], "/logout-everywhere", form: ["csrf": token])
            try expect(out.status == 303, "logout everywhere answered \(out.status)")
            expectedEvents.append(("sessions.revoked", -1))
            let revokedAt = Date()
            var slowest = 0.0
            for web in webs {
                var copy = phone
                var view = try copy.get(web, "/")
                // Redis reports the destroy to every instance's cache as it answers; allow that report its travel.
                while view.status == 200 && view.shownTimezone != nil && Date().timeIntervalSince(revokedAt) < 1 {
                    usleep(1_000)
                    copy = phone
                    view = try copy.get(web, "/")
                }
                slowest = max(slowest, Date().timeIntervalSince(revokedAt))
                try expect(
                    view.status == 200 && view.shownTimezone == nil,
                    "\(web) still shows the second session signed in 1 s after logout everywhere")
            }
            figures.append(
                String(
                    format:
                        "logout everywhere: all %d instances answered the revoked session as signed out within %.1f ms (requests in turn)",
                    webs.count, slowest * 1000))
            alice = Browser()
            try expect(
                try alice.signIn(webs[0], user: options.user, password: options.password).status == 303, "sign in again"
            )
            expectedEvents.append(("user.logged_in", -1))
        }

        check("propagation through HTTP over \(options.changes) changes") {
            var samples: [Double] = []
            let zones = ["Europe/Berlin", "America/Chicago", "Australia/Sydney", "Africa/Nairobi", "Asia/Kolkata"]
            for index in 0..<options.changes {
                let writer = webs[index % 3]
                let reader = webs[(index + 1) % 3]
                let token = try alice.get(writer, "/settings").csrfToken.orThrow("no CSRF token")
                current = zones[index % zones.count]
                let started = Date()
                let response = try alice.post(
                    writer, "/settings", form: ["timezone": current],
                    headers: [("HX-Request", "true"), ("X-CSRF-Token", token)])
                try expect(response.status == 204, "change answered \(response.status)")
                expectedEvents.append(("settings.changed", -1))
                var shown: String?
                repeat {
                    shown = try alice.get(reader, "/").shownTimezone
                } while shown != current && Date().timeIntervalSince(started) < 2
                try expect(shown == current, "\(reader) did not show \(current) within 2 s")
                samples.append(Date().timeIntervalSince(started) * 1000)
            }
            samples.sort()
            let p50 = samples[samples.count / 2]
            let p99 = samples[min(samples.count - 1, Int((Double(samples.count) * 0.99).rounded(.up)) - 1)]
            figures.append(
                String(
                    format:
                        "propagation through HTTP (change on one instance until shown on another), %d changes: p50 %.1f ms, p99 %.1f ms",
                    samples.count, p50, p99))
        }

        if options.restart == "shutdown" {
            check(
                "Redis restart under steady load: unhealthy, healthy within 2 s of Redis returning, no stale timezone"
            ) {
                try redisRestart(alice: alice, current: &current)
            }
        }

        check("subscriber cut (CLIENT KILL) on instance 3: it never serves the old value once resubscribed") {
            let name = instanceNames[2] + "-sub"
            let before = number(try stats(admins[2]), "subscriber.resyncs")
            let list = try withRedis { client in try await client.send("CLIENT", "LIST", "TYPE", "pubsub").string ?? ""
            }
            let line = try list.split(separator: "\n").first { $0.contains("name=\(name) ") }.orThrow(
                "no subscriber named \(name)")
            let id = try line.split(separator: " ").first { $0.hasPrefix("id=") }.map { String($0.dropFirst(3)) }
                .orThrow("no id")
            _ = try withRedis { client in try await client.send("CLIENT", "KILL", "ID", id) }
            let old = current
            current = "America/Sao_Paulo"
            let token = try alice.get(webs[0], "/settings").csrfToken.orThrow("no CSRF token")
            let change = try alice.post(webs[0], "/settings", form: ["timezone": current, "csrf": token])
            try expect(change.status == 303, "change answered \(change.status)")
            expectedEvents.append(("settings.changed", -1))
            let deadline = Date().addingTimeInterval(5)
            while number(try stats(admins[2]), "subscriber.resyncs") <= before && Date() < deadline { usleep(5_000) }
            try expect(number(try stats(admins[2]), "subscriber.resyncs") > before, "instance 3 did not resubscribe")
            for _ in 0..<20 {
                let shown = try alice.get(webs[2], "/").shownTimezone
                try expect(shown != old, "instance 3 served the old timezone \(old) after resubscribing")
                try expect(shown == current, "instance 3 shows \(shown ?? "nothing")")
            }
        }

        if let file = options.keysFile, !options.reloadPIDs.isEmpty {
            check("session keys rotate under load (new key first, re-save, old key removed): nobody signed out") {
                try keyRotation(file: file, pids: options.reloadPIDs, alice: alice)
            }
        }

        if let log = options.listenerLog {
            check("the listener's log holds every event in order") { try listenerLog(log) }
        }

        say("")
        for figure in figures { say("figure: \(figure)") }
        say("\(passed) passed, \(failed) failed")
        return failed == 0
    }
}

extension Optional {
    func orThrow(_ message: String) throws -> Wrapped {
        guard let self else { throw HTTPFailure(description: message) }
        return self
    }
}
