import Foundation
import RedisClient
import RedisSession
import SettingsSync
import Synchronization

/// `session-listen`: prints the session events published on a deployment's events channel.
@main
struct SessionListen {
    static let usage = """
        USAGE: session-listen [--url URL] [--prefix PREFIX] [--json] [--count N] [--timeout SECONDS] [--type TYPE]

        Subscribes to <prefix>events and prints one line per event: local time, type, user, timezone, version,
        origin and lag (publish to receipt, in ms).

        OPTIONS:
          --url URL          Redis URL (default: $REDIS_URL, else redis://127.0.0.1:6379); TLS is
                             rediss://, rediss-sentinel:// or rediss-cluster://, with ?ca=PATH for a
                             private CA (docs/TLS.md)
          --prefix PREFIX    key prefix of the deployment (default: rsess:)
          --json             print each event as its JSON payload, unchanged, plus "lag_ms"
          --count N          exit 0 after N events (after the --type filter)
          --timeout SECONDS  exit 1 if no event arrives for SECONDS
          --type TYPE        only events of this type (user.logged_in, settings.changed, user.logged_out,
                             sessions.revoked); repeatable
          -h, --help         show this help

        Connection trouble is a notice on stderr, and the listener reconnects with backoff; a payload that is not
        an event is a warning on stderr, and listening goes on. Ctrl-C exits 0.

        EXIT STATUS: 0 on --count or Ctrl-C, 1 on --timeout, 64 on a usage error.
        """

    struct Options {
        var url =
            ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "redis://127.0.0.1:6379"
        var prefix = "rsess:"
        var json = false
        var count: Int?
        var timeout: Double?
        var types: Set<String> = []
    }

    static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var options = Options()
        var iterator = arguments.makeIterator()
        func value(_ flag: String) throws(UsageError) -> String {
            guard let next = iterator.next(), !next.hasPrefix("--") else { throw UsageError("\(flag) needs a value") }
            return next
        }
        while let argument = iterator.next() {
            switch argument {
            case "--url": options.url = try value(argument)
            case "--prefix": options.prefix = try value(argument)
            case "--json": options.json = true
            case "--count":
                guard let count = Int(try value(argument)), count > 0 else {
                    throw UsageError("--count needs a positive integer")
                }
                options.count = count
            case "--timeout":
                guard let seconds = Double(try value(argument)), seconds > 0, seconds.isFinite else {
                    throw UsageError("--timeout needs a positive number of seconds")
                }
                options.timeout = seconds
            case "--type":
                let type = try value(argument)
                let known = ["user.logged_in", "settings.changed", "user.logged_out", "sessions.revoked"]
                guard known.contains(type) else {
                    throw UsageError("unknown --type '\(type)'; expected one of \(known.joined(separator: ", "))")
                }
                options.types.insert(type)
            default: throw UsageError("unknown argument '\(argument)'")
            }
        }
        do {
            _ = try RedisConfiguration(url: options.url)
        } catch {
            throw UsageError(error.message)
        }
        return options
    }

    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains("-h") || arguments.contains("--help") {
            print(usage)
            exit(0)
        }
        let options: Options
        do {
            options = try parse(arguments)
        } catch {
            FileHandle.standardError.write(
                Data("session-listen: \(error.message)\n\nRun session-listen --help for usage.\n".utf8))
            exit(64)
        }
        // Ctrl-C and SIGTERM end the listening task; the subscription then closes its connection.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let listener = Task { await listen(options) }
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { listener.cancel() }
            source.resume()
            sources.append(source)
        }
        let status = await listener.value
        sources.forEach { $0.cancel() }
        exit(status)
    }

    /// Listens until the count is reached (0), the idle timeout passes (1) or the task is cancelled (0).
    static func listen(_ options: Options) async -> Int32 {
        let configuration: RedisConfiguration
        do {
            configuration = try RedisConfiguration(url: options.url)
        } catch {
            return 64
        }
        let channel = options.prefix + "events"
        let subscription = RedisSubscriber(configuration: configuration).subscribe(to: [channel])
        return await withTaskGroup(of: Int32?.self) { group in
            let lastActivity = Clock()
            group.addTask {
                var printed = 0
                for await event in subscription {
                    switch event {
                    case .subscribed:
                        note("listening on \(channel) at \(configuration.serverDescription)")
                    case .disconnected(let error):
                        note("disconnected: \(error.message); reconnecting")
                    case .resubscribed:
                        note("resubscribed after a gap: events published meanwhile were missed")
                    case .message(let message):
                        guard let line = render(message.payload, options: options) else { continue }
                        // Unbuffered, so a log file or a pipe sees each event as it arrives.
                        FileHandle.standardOutput.write(Data((line + "\n").utf8))
                        lastActivity.touch()
                        printed += 1
                        if let count = options.count, printed >= count { return 0 }
                    }
                }
                return 0  // cancelled (Ctrl-C)
            }
            if let timeout = options.timeout {
                group.addTask {
                    while !Task.isCancelled {
                        let idle = lastActivity.secondsSinceTouch
                        if idle >= timeout {
                            note("no event for \(timeout) s; giving up")
                            return 1
                        }
                        try? await Task.sleep(for: .milliseconds(Int((timeout - idle) * 1000) + 1))
                    }
                    return nil
                }
            }
            let first = await group.next() ?? 0
            group.cancelAll()
            return first ?? 0
        }
    }

    /// One output line for a payload, or `nil` when it is filtered out. Malformed payloads print a warning.
    static func render(_ payload: [UInt8], options: Options) -> String? {
        let event: SessionEvent
        switch SessionEvent.decode(payload) {
        case .success(let decoded): event = decoded
        case .failure(let malformed):
            let preview = String(decoding: payload.prefix(80), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
            warn("skipped a malformed payload (\(malformed.reason)): \(preview)")
            return nil
        }
        if !options.types.isEmpty && !options.types.contains(event.kind.rawValue) { return nil }
        let lag = max(0, Date().timeIntervalSince1970 * 1000 - Double(event.publishedAtMilliseconds))
        let lagText = String(format: "%.2f", lag)
        if options.json {
            // The payload unchanged, plus the lag: insert the field before the closing brace.
            var text = String(decoding: payload, as: UTF8.self)
            while let last = text.last, last.isWhitespace { text.removeLast() }
            guard text.hasSuffix("}") else { return nil }
            text.removeLast()
            let separator = text.trimmingCharacters(in: .whitespaces).hasSuffix("{") ? "" : ","
            return text + separator + "\"lag_ms\":" + lagText + "}"
        }
        let time = Self.timeFormatter.string(from: Date())
        let timezone = event.timezone ?? "-"
        return
            "\(time)  \(event.kind.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0))  user=\(event.user)  "
            + "timezone=\(timezone)  version=\(event.version)  origin=\(event.origin)  lag=\(lagText)ms"
    }

    static let timeFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss.SSS"
        return formatter
    }()

    static func note(_ text: String) { FileHandle.standardError.write(Data("session-listen: \(text)\n".utf8)) }
    static func warn(_ text: String) { FileHandle.standardError.write(Data("session-listen: warning: \(text)\n".utf8)) }
}

struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// The time of the last printed event, shared by the listening and the timeout task.
final class Clock: Sendable {
    private let last = Mutex(ContinuousClock.now)
    func touch() { last.withLock { $0 = .now } }
    var secondsSinceTouch: Double {
        (ContinuousClock.now - last.withLock { $0 }).seconds
    }
}
