import Foundation
import RedisClient
import RedisSession
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// The rig's Sentinel faults (formerly docker/sentinel-check.py), run by `docker/rig check` when the rig is up with
// `--topology sentinel`. Under steady load through the load balancer:
// 1. kill -9 of the master. Just before it, bob's "log out everywhere" is confirmed and alice changes her timezone.
//    Every failed request must be a 503; the first success must come no later than 1 s after the first
//    `+switch-master`; afterwards no instance may serve a timezone other than the new master's record, or bob's
//    revoked session; the killed master must come back as a replica and the set heal.
// 2. SENTINEL FAILOVER. The old master is watched with MONITOR: nothing the web tier writes may reach it more than
//    100 ms after the first `+switch-master`. The checker's own probe measures how long the old master keeps
//    accepting writes after the announcement: the window in which an unconfirmed write can be lost.

/// What the web tier writes with; a sentinel's own commands (PING, INFO, PUBLISH hello, REPLICAOF) are not among them.
let webTierWrites: Set<String> = [
    "EVALSHA", "EVAL", "MULTI", "EXEC", "HSET", "HDEL", "DEL", "UNLINK", "PEXPIRE", "PEXPIREAT", "EXPIRE", "ZADD",
    "ZREM", "SET", "INCR", "INCRBY", "HINCRBY", "RENAME",
]

/// The rig's Sentinel set: three sentinels watching master `rsess` on two data nodes.
struct SentinelSet {
    let sentinels: [Int]
    let nodes: [Int]

    /// The master's port, as the first sentinel that answers names it.
    func master() -> Int? {
        for sentinel in sentinels {
            if let reply = redisCall(sentinel, "SENTINEL", "get-master-addr-by-name", "rsess")?.array, reply.count == 2
            {
                return reply[1].int
            }
        }
        return nil
    }

    /// The data node that is not the master.
    func replica() -> Int? {
        let current = master()
        return nodes.first { $0 != current }
    }

    /// The master says it is one, the replica is in sync, and every sentinel sees one replica, two other sentinels
    /// and no "down" flag.
    func healed() -> Bool {
        guard let current = master(), role(of: current) == "master" else { return false }
        guard let other = replica(),
            infoFields(redisCall(other, "INFO", "replication")?.string)["master_link_status"] == "up"
        else { return false }
        for sentinel in sentinels {
            let fields = pairs(redisCall(sentinel, "SENTINEL", "MASTER", "rsess"))
            if fields["num-slaves"] != "1" || fields["num-other-sentinels"] != "2"
                || (fields["flags"] ?? "").contains("down")
            {
                return false
            }
        }
        return true
    }
}

/// `+switch-master` on every sentinel, through the library's subscriber; remembers the first announcement's
/// wall-clock time.
final class SwitchWatcher: Sendable {
    private let announcedAt = Mutex<Double?>(nil)
    private let confirmed = Atomic<Int>(0)
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(sentinels: [Int]) {
        for port in sentinels {
            let subscription = RedisSubscriber(configuration: nodeConfiguration(port)).subscribe(to: ["+switch-master"])
            let task = Task { [self] in
                for await event in subscription {
                    switch event {
                    case .subscribed:
                        confirmed.wrappingAdd(1, ordering: .relaxed)
                    case .message(let message) where message.channel == "+switch-master":
                        let now = wallClock()
                        announcedAt.withLock { if $0 == nil { $0 = now } }
                    default:
                        break
                    }
                }
            }
            tasks.withLock { $0.append(task) }
        }
        // rigkit slept 0.2 s for its SUBSCRIBEs; here every confirmation is awaited (2 s at most).
        _ = waitUntil(2, every: 0.01) { confirmed.load(ordering: .relaxed) >= sentinels.count }
    }

    /// The first announcement's time, waiting up to `timeout` seconds for one.
    func wait(_ timeout: Double) -> Double? {
        _ = waitUntil(timeout) { announcedAt.withLock { $0 } != nil }
        return announcedAt.withLock { $0 }
    }

    /// Ends the subscriptions: their connections close and their threads exit.
    func stop() { tasks.withLock { tasks in for task in tasks { task.cancel() } } }
}

/// Lines a reader thread collects.
final class LineSink: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var snapshot: [String] { lines.withLock { $0 } }
}

/// `redis-cli monitor` on one node. The library has no MONITOR (its connections match one reply per request, and
/// HiredisConnection is internal), and the checker keeps no RESP parser of its own; redis-cli prints each monitored
/// command as one line, `1700000000.123456 [0 127.0.0.1:40001] "SET" "key" "value"`, the line rigkit read.
final class MonitorLog {
    private let process = Process()
    private let sink = LineSink()

    init(port: Int) throws {
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-cli"] + redisCLITLSArguments + ["-p", String(port), "monitor"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        // A descriptor of the reader's own: the pipe's handles close theirs when they go.
        let descriptor = dup(pipe.fileHandleForReading.fileDescriptor)
        let sink = self.sink
        let reader = Thread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                pending.append(contentsOf: buffer[..<count])
                while let newline = pending.firstIndex(of: 10) {
                    sink.append(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            close(descriptor)
        }
        reader.start()
        // rigkit read MONITOR's +OK before going on; redis-cli prints it as its first line.
        _ = waitUntil(2, every: 0.005) { !sink.snapshot.isEmpty }
    }

    /// Ends the monitor, as rigkit closed its socket, and returns the lines it printed.
    func stop() -> [String] {
        if process.isRunning { process.terminate() }
        return sink.snapshot
    }
}

/// Timezone changes in a loop through the load balancer (writes that go through the master), every status kept.
final class TimezoneWriter: Sendable {
    private let results = Mutex<[Answer]>([])
    private let running = Atomic<Bool>(true)

    init(_ browser: SharedBrowser) {
        let thread = Thread { [self] in
            let zones = ["Asia/Tokyo", "Europe/Paris", "America/Chicago", "UTC"]
            var index = 0
            while running.load(ordering: .relaxed) {
                let answer: Answer
                do {
                    answer = .status(try browser.setTimezone(zones[index % zones.count]))
                } catch {
                    answer = .text("connection error")
                }
                results.withLock { $0.append(answer) }
                index += 1
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        thread.start()
    }

    func stop() { running.store(false, ordering: .relaxed) }

    var tally: Tally { Tally(results.withLock { $0 }) }
}

/// A user's settings record as one node holds it.
struct SettingsRecord {
    let timezone: String?
    let version: String?
    var repr: String { "(\(Py.optional(timezone)), \(Py.optional(version)))" }
}

extension FaultRun {
    func sentinelFaults() {
        let topology = SentinelSet(sentinels: ports("SENTINEL_PORTS"), nodes: ports("NODE_PORTS"))
        verdict("the set is healthy before the faults", waitUntil(60, every: 0.2, topology.healed))
        killTheMaster(topology)
        manualFailover(topology)
    }

    /// The record at `SessionKeys.settings(user)` on one node (sentinel-check.py found it with SCAN); nil when the
    /// node has no such key.
    func settingsRecord(on port: Int, user: String) -> SettingsRecord? {
        guard let fields = redisCall(port, "HMGET", keys.settings(user), "timezone", "version")?.array,
            fields.count == 2, !(fields[0].isNull && fields[1].isNull)
        else { return nil }
        return SettingsRecord(timezone: fields[0].string, version: fields[1].string)
    }

    func killTheMaster(_ topology: SentinelSet) {
        let alice = SharedBrowser(lb)
        verdict("alice signs in through the load balancer", alice.signIn("alice", "wonderland") == 303)
        let bobKept = SharedBrowser(lb)
        let bobOther = SharedBrowser(lb)
        verdict(
            "bob signs in twice",
            bobKept.signIn("bob", "builder") == 303 && bobOther.signIn("bob", "builder") == 303)
        let load = PageLoad([("alice", alice, "alice")], pause: 0.01)
        Thread.sleep(forTimeInterval: 1)
        // Just before the kill: a confirmed log out everywhere, and a timezone change.
        let status = bobOther.logoutEverywhere()
        verdict("bob's log out everywhere is confirmed before the kill", status == 200 || status == 303, Py.int(status))
        verdict(
            "alice changes her timezone just before the kill", (try? alice.setTimezone("Australia/Sydney")) == 303)

        let watcher = SwitchWatcher(sentinels: topology.sentinels)
        defer { watcher.stop() }
        guard let master = topology.master(), let pid = processID(of: master) else {
            // sentinel-check.py stopped with a traceback here.
            verdict("the master and its process are found", false, "master \(Py.int(topology.master()))")
            load.stop()
            return
        }
        let killed = wallClock()
        _ = kill(pid, SIGKILL)
        let announcement = watcher.wait(30)
        verdict("the sentinels announce a new master after kill -9", announcement != nil)
        guard let announced = announcement else {
            load.stop()
            return
        }
        let recovered = waitUntil(10, every: 0.02) {
            load.views(from: announced, to: wallClock()).contains { $0.answer == .ok }
        }
        Thread.sleep(forTimeInterval: 1)
        load.stop()
        let firstOK = load.views(from: announced, to: wallClock()).filter { $0.answer == .ok }.map(\.ended).min()
        let kinds = Tally(load.views(from: killed, to: announced + 2).map(\.answer))
        verdict("every failed request during the failover is a 503", kinds.within([.ok, .status(503)]), kinds.repr)
        let afterAnnouncement = (firstOK ?? 0) - announced
        let afterKill = (firstOK ?? 0) - killed
        verdict(
            "the first success comes within 1 s of the announcement",
            recovered && firstOK != nil && afterAnnouncement <= 1.0, "\(Py.fixed(afterAnnouncement, 2)) s")
        let newMaster = topology.master()
        figure(
            "kill",
            .object([
                ("announced_after_kill_s", .number(Py.round(announced - killed, 2))),
                ("first_success_after_announcement_s", .number(Py.round(afterAnnouncement, 3))),
                ("first_success_after_kill_s", .number(Py.round(afterKill, 2))),
                ("answers", kinds.json),
            ]))
        say(
            "figure: kill -9 of the master: +switch-master \(Py.fixed(announced - killed, 2)) s after the kill, "
                + "first success \(Py.fixed(afterAnnouncement, 3)) s after it (\(Py.fixed(afterKill, 2)) s after the "
                + "kill); answers \(kinds.repr)")

        // No instance serves a stale timezone or the revoked session.
        let record = newMaster.flatMap { settingsRecord(on: $0, user: "alice") }
        let shown = landings(alice.cookies)
        let shownRepr = Py.dict(shown.map { (String($0.port), Py.optional($0.landing?.timezone)) })
        verdict(
            "every instance shows alice the timezone the new master holds",
            record != nil && shown.allSatisfy { $0.landing?.timezone == record?.timezone },
            "record \(record?.repr ?? "None"), shown \(shownRepr)")
        let revoked = landings(bobKept.cookies)
        verdict(
            "bob's session revoked before the kill stays revoked on every instance",
            revoked.allSatisfy { $0.landing == nil },
            Py.dict(revoked.map { (String($0.port), $0.landing?.repr ?? "None") }))

        // The killed master's supervisor restarts it as a replica of the new master.
        let rejoined = waitUntil(30, every: 0.2) { ["slave", "replica"].contains(role(of: master) ?? "") }
        verdict(
            "the killed master comes back as a replica, not a second master", rejoined,
            Py.str(redisCall(master, "ROLE")))
        verdict("the set heals (replica in sync, sentinels agree)", waitUntil(60, every: 0.2, topology.healed))
    }

    func manualFailover(_ topology: SentinelSet) {
        let alice = SharedBrowser(lb)
        verdict("alice signs in for the manual failover", alice.signIn("alice", "wonderland") == 303)
        let writerBrowser = SharedBrowser(lb, cookies: alice.cookies)
        let load = PageLoad([("alice", alice, "alice")], pause: 0.01)
        let writer = TimezoneWriter(writerBrowser)
        guard let oldMaster = topology.master() else {
            // sentinel-check.py stopped with a traceback here.
            verdict("the sentinels name the master before the manual failover", false, "None")
            load.stop()
            writer.stop()
            return
        }
        let monitor: MonitorLog
        do {
            monitor = try MonitorLog(port: oldMaster)
        } catch {
            verdict("MONITOR runs on the old master", false, "\(error)")
            load.stop()
            writer.stop()
            return
        }
        // The checker's own probe: when does the old master stop accepting writes? Connected now, as rigkit's was.
        let probe = RedisClient(configuration: nodeConfiguration(oldMaster))
        _ = try? blocking { try await probe.send("PING") }
        let watcher = SwitchWatcher(sentinels: topology.sentinels)
        defer {
            watcher.stop()
            _ = try? blocking { await probe.close() }
        }
        Thread.sleep(forTimeInterval: 1)
        let started = wallClock()
        let reply = redisCall(topology.sentinels[0], "SENTINEL", "FAILOVER", "rsess")
        verdict("SENTINEL FAILOVER is accepted", reply?.string == "OK", Py.str(reply))
        let announcement = watcher.wait(30)
        verdict("the sentinels announce the switch", announcement != nil)
        guard let announced = announcement else {
            load.stop()
            writer.stop()
            _ = monitor.stop()
            return
        }
        var refusedAt: Double?
        let deadline = wallClock() + 30
        while wallClock() < deadline {
            let stamp = String(wallClock())
            // An error reply (READONLY) or a dropped connection (demoted, it dropped its clients): refused.
            if (try? blocking({ try await probe.send("SET", "rsess-probe:old-master", stamp) })) == nil {
                refusedAt = wallClock()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        Thread.sleep(forTimeInterval: 0.5)
        load.stop()
        writer.stop()
        var late: [String] = []
        for line in monitor.stop() {
            guard let stamp = Double(line.prefix { $0 != " " }) else { continue }
            let parts = line.split(separator: "\"", omittingEmptySubsequences: false)
            let command = parts.count > 1 ? parts[1].uppercased() : ""
            var client = Substring("")
            if let open = line.firstIndex(of: "[") {
                client = line[line.index(after: open)...].prefix { $0 != "]" }
            }
            if stamp > announced + 0.1 && webTierWrites.contains(command) && !client.contains(" lua")
                && !line.contains("rsess-probe")
            {
                late.append(String(line.prefix(120)))
            }
        }
        verdict(
            "nothing the web tier writes reaches the demoted master more than 100 ms after +switch-master",
            late.isEmpty, "\(late.count) writes, first: \(Py.list(late.prefix(2).map { Py.repr($0) }))")
        let kinds = Tally(load.views(from: started, to: wallClock()).map(\.answer))
        verdict(
            "every failed page view during the manual failover is a 503", kinds.within([.ok, .status(503)]),
            kinds.repr)
        let writes = writer.tally
        verdict(
            "every failed write during the manual failover is a 503", writes.within([.status(303), .status(503)]),
            writes.repr)
        let window = refusedAt.map { $0 - announced }
        figure(
            "manual",
            .object([
                ("announced_after_command_s", .number(Py.round(announced - started, 2))),
                (
                    "old_master_accepted_writes_after_announcement_s",
                    window.map { $0 == 0 ? JSONFigure.null : JSONFigure.number(Py.round($0, 2)) } ?? .null
                ),
                ("web_writes_on_old_master_after_100ms", .int(late.count)),
                ("page_answers", kinds.json),
                ("writes", writes.json),
            ]))
        say(
            "figure: SENTINEL FAILOVER: +switch-master \(Py.fixed(announced - started, 2)) s after the command; "
                + "the old master accepted writes for \(window.map { Py.float(Py.round($0, 2)) } ?? "None") s after "
                + "it (the loss window); web-tier writes on it later than 100 ms: \(late.count); pages \(kinds.repr); "
                + "writes \(writes.repr)")
        verdict("the old master is demoted and the set heals", waitUntil(60, every: 0.2, topology.healed))
    }
}
