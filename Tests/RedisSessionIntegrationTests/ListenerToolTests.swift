import Foundation
import RedisClient
import RedisSession
import SettingsSync
import RedisTesting
import Testing

/// Runs the built `session-listen` binary as a subprocess.
@Suite(.timeLimit(.minutes(1))) struct ListenerToolTests {
    static var binary: URL {
        // Test bundles and executables are built into the same folder.
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("session-listen")
    }

    struct Run {
        let process: Process
        let output: Pipe
        let errors: Pipe

        func wait() -> (status: Int32, stdout: String, stderr: String) {
            let out = output.fileHandleForReading.readDataToEndOfFile()
            let err = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (
                process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self)
            )
        }
    }

    func launch(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        return Run(process: process, output: output, errors: errors)
    }

    @Test func printsEventsAsJSONAndSurvivesMalformedPayloads() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build session-listen first")
        let url = try await RedisServer.sharedURL()
        let prefix = "listen\(UUID().uuidString.prefix(6)):"
        let run = try launch(["--url", url, "--prefix", prefix, "--json", "--count", "3", "--timeout", "20"])
        let client = RedisClient(configuration: try RedisConfiguration(url: url))
        let bus = SessionEventBus(client: client, keyPrefix: prefix)
        // Wait until the listener is subscribed.
        var subscribed = false
        for _ in 0..<500 where !subscribed {
            subscribed = (try await client.send("PUBSUB", "NUMSUB", bus.channel).array?.last?.int ?? 0) > 0
            if !subscribed { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(subscribed)
        try await bus.publish(
            SessionEvent(kind: .loggedIn, user: "alice", timezone: "Europe/Paris", version: 1, origin: "web-1"))
        try await client.send("PUBLISH", bus.channel, "this is not json")
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        _ = try await settings.write(
            userID: "alice", timezone: "Asia/Tokyo",
            announcing: bus.announcement(.settingsChanged, user: "alice", timezone: "Asia/Tokyo", origin: "web-2")
        )
        try await bus.publish(SessionEvent(kind: .sessionsRevoked, user: "alice", version: 0, origin: "web-3"))
        let result = run.wait()
        await client.close()

        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3, "\(result.stdout)")
        #expect(result.stderr.contains("warning: skipped a malformed payload"))
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.count == 3)
        #expect(objects.map { $0["type"] as? String } == ["user.logged_in", "settings.changed", "sessions.revoked"])
        #expect(objects[1]["timezone"] as? String == "Asia/Tokyo")
        #expect(objects[1]["origin"] as? String == "web-2")
        #expect(objects.allSatisfy { ($0["lag_ms"] as? Double).map { $0 >= 0 } ?? false })
    }

    /// On a cluster the listener hears every primary (the quickest copy of each event) and prints each event once.
    @Test func onAClusterEachEventIsPrintedOnce() async throws {
        let cluster = try await RedisCluster.shared()
        let prefix = "listen\(UUID().uuidString.prefix(6)):"
        let run = try launch(["--url", cluster.url, "--prefix", prefix, "--json", "--timeout", "2"])
        let client = RedisClient(configuration: try RedisConfiguration(url: cluster.url))
        let bus = SessionEventBus(client: client, keyPrefix: prefix)
        // Subscribed on every primary: each reports the listener's subscription.
        let primaries = try await cluster.primaryPorts()
        let subscribed = await eventually(timeout: .seconds(10), interval: .milliseconds(20)) {
            for port in primaries {
                let count = try? await cluster.ask(port, "PUBSUB", "NUMSUB", bus.channel).array?.last?.int
                if (count ?? 0) < 1 { return false }
            }
            return true
        }
        #expect(subscribed)
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        for (index, user) in ["alice", "bob", "carol", "dave", "erin"].enumerated() {
            _ = try await settings.write(
                userID: user, timezone: "Asia/Tokyo",
                announcing: bus.announcement(
                    .settingsChanged, user: user, timezone: "Asia/Tokyo", origin: "web-\(index)"))
        }
        let result = run.wait()  // exits 1 after 2 s without an event: every copy has arrived by then
        await client.close()
        let lines = result.stdout.split(separator: "\n").filter { $0.contains("settings.changed") }
        #expect(lines.count == 5, "each event once: \(lines)")
    }

    @Test func typeFilterTimeoutAndUsageErrors() async throws {
        let url = try await RedisServer.sharedURL()
        let quiet = try launch(["--url", url, "--prefix", "nobody-publishes:", "--timeout", "0.3"])
        let quietResult = quiet.wait()
        #expect(quietResult.status == 1)
        #expect(quietResult.stderr.contains("no event for"))

        let usage = try launch(["--count", "zero"])
        let usageResult = usage.wait()
        #expect(usageResult.status == 64)
        #expect(usageResult.stderr.contains("--count needs a positive integer"))

        let help = try launch(["--help"])
        let helpResult = help.wait()
        #expect(helpResult.status == 0)
        for option in ["--url", "--prefix", "--json", "--count", "--timeout", "--type"] {
            #expect(helpResult.stdout.contains(option))
        }
    }

    @Test func ctrlCExitsZeroPromptly() async throws {
        let url = try await RedisServer.sharedURL()
        let run = try launch(["--url", url])
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        run.process.interrupt()
        let result = run.wait()
        #expect(result.status == 0)
        #expect(ContinuousClock.now - started < .seconds(2))
    }
}
