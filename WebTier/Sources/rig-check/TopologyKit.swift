import Foundation
import RedisClient
import RedisSession
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// What the Sentinel and Cluster faults share: the Swift side of what docker/rigkit.py was, without its RESP client.
// Every Redis command goes through the library's RedisClient (one short-lived client per call, like rigkit's `call`),
// pub/sub through RedisSubscriber, and MONITOR through redis-cli.

/// One run of a topology's faults against the process rig `docker/rig up --topology ...` started: ports from
/// `<state>/env`, one "ok"/"FAIL" line per check, the figures as JSON, and "N passed, M failed", printed as the
/// Python checkers printed them (a human reads them, and SENTINEL_JSON / CLUSTER_JSON take the JSON).
final class FaultRun {
    let state: String
    let env: [String: String]
    let lb: Endpoint
    let webs: [Endpoint]
    let keys: SessionKeys
    private(set) var passed = 0
    private(set) var failed = 0
    /// rigkit's FIGURES: in insertion order, as a Python dict keeps it.
    private var figures: [(String, JSONFigure)] = []

    init(state: String, prefix: String) throws {
        let env = try rigEnvironment(state)
        func endpoint(_ key: String) throws -> Endpoint {
            let port = try env[key].orThrow("no \(key) in \(state)/env: is the rig up?")
            return try Endpoint(url: "http://127.0.0.1:\(port)")
        }
        self.state = state
        self.env = env
        self.lb = try endpoint("LB_PORT")
        self.webs = try ["WEB1_PORT", "WEB2_PORT", "WEB3_PORT"].map(endpoint)
        self.keys = SessionKeys(prefix: prefix)
    }

    /// `rig-check --topology sentinel|cluster`: the faults of the topology the rig runs; the exit status.
    static func run(topology: String, state: String, json: String?, prefix: String) -> Int32 {
        let run: FaultRun
        do {
            run = try FaultRun(state: state, prefix: prefix)
        } catch {
            FileHandle.standardError.write(Data("rig-check: \(error)\n".utf8))
            return 1
        }
        guard run.env["TOPOLOGY"] == topology else {
            FileHandle.standardError.write(Data("rig-check: the rig is not up with --topology \(topology)\n".utf8))
            return 1
        }
        if topology == "sentinel" { run.sentinelFaults() } else { run.clusterFaults() }
        return run.finish(json: json)
    }

    /// rigkit's `check`: "ok    name", or "FAIL  name: detail" (the detail as Python's str() showed it).
    func verdict(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
        if ok {
            passed += 1
            say("ok    \(name)")
        } else {
            failed += 1
            say("FAIL  \(name): \(detail())")
        }
    }

    /// `FIGURES[key] = value`: a key set again keeps its place.
    func figure(_ key: String, _ value: JSONFigure) {
        if let index = figures.firstIndex(where: { $0.0 == key }) {
            figures[index].1 = value
        } else {
            figures.append((key, value))
        }
    }

    /// rigkit's `finish`: the figures to `path` (indented) and on one line, then "N passed, M failed".
    func finish(json path: String?) -> Int32 {
        let all = JSONFigure.object(figures)
        var unwritten = false
        if let path {
            do {
                try all.json(indent: 2).write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                FileHandle.standardError.write(Data("rig-check: cannot write \(path): \(error)\n".utf8))
                unwritten = true
            }
        }
        if !figures.isEmpty { say(all.json()) }
        say("\(passed) passed, \(failed) failed")
        return failed == 0 && !unwritten ? 0 : 1
    }

    /// A space-separated list of ports from the rig's env (NODE_PORTS, SENTINEL_PORTS).
    func ports(_ key: String) -> [Int] {
        (env[key] ?? "").split(separator: " ").compactMap { Int($0) }
    }

    /// What each instance shows to a copy of these cookies (a landing page, or nil), keyed by its port.
    func landings(_ cookies: [String: String]) -> [(port: Int, landing: Landing?)] {
        webs.map { web -> (port: Int, landing: Landing?) in
            (web.port, (try? SharedBrowser(web, cookies: cookies).get("/"))?.landing)
        }
    }
}

/// The running rig's `<state>/env`, as rigkit's `rig_env` read it: `KEY=value` per line, quotes stripped.
func rigEnvironment(_ state: String) throws -> [String: String] {
    guard let text = try? String(contentsOfFile: state + "/env", encoding: .utf8) else {
        throw HTTPFailure(description: "no rig state at \(state)/env: is the rig up (docker/rig up --topology ...)?")
    }
    var values: [String: String] = [:]
    for line in text.split(separator: "\n") {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let key = trimmed.prefix { $0 != "=" }
        values[String(key)] = trimmed.dropFirst(key.count + 1).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
    return values
}

// MARK: Redis, through the library

/// One node of the rig (a data node, a sentinel or a cluster node) as a standalone server: 2 s to connect and to
/// answer, as rigkit allowed, on one connection. No password, database or name, so the handshake sends nothing a
/// sentinel would refuse.
func nodeConfiguration(_ port: Int) -> RedisConfiguration {
    RedisConfiguration(
        topology: .standalone(.tcp(host: "127.0.0.1", port: port)), connectTimeout: .seconds(2),
        commandTimeout: .seconds(2), poolSize: 1, tls: rigTLSDirectory.map { .init(caFile: "\($0)/ca.crt") })
}

// MARK: TLS, when the rig runs it (`docker/rig up --tls`)

/// The folder of the rig's certificates when every node accepts TLS only; `docker/rig check` passes it in
/// `RIG_TLS_DIR`.
let rigTLSDirectory: String? = ProcessInfo.processInfo.environment["RIG_TLS_DIR"].flatMap { $0.isEmpty ? nil : $0 }

/// What redis-cli needs to reach a node of this rig.
let redisCLITLSArguments: [String] = rigTLSDirectory.map { ["--tls", "--cacert", "\($0)/ca.crt"] } ?? []

/// How a redis-server the checker starts listens, as `docker/rig`'s `listen_args`: plaintext, or TLS only with TLS to
/// the other nodes (replication, and the bus of a cluster node).
func redisListenerArguments(port: Int, clusterNode: Bool) -> [String] {
    guard let directory = rigTLSDirectory else { return ["--port", String(port)] }
    return [
        "--port", "0", "--tls-port", String(port), "--tls-cert-file", "\(directory)/server.crt", "--tls-key-file",
        "\(directory)/server.key", "--tls-ca-cert-file", "\(directory)/ca.crt", "--tls-auth-clients", "no",
        "--tls-replication", "yes",
    ] + (clusterNode ? ["--tls-cluster", "yes"] : [])
}

/// One command on a client of its own, as rigkit's `call`: nil when the node cannot be reached or does not answer,
/// an error reply as `.error(message)`.
func redisCall(_ port: Int, _ arguments: String...) -> RedisValue? {
    let command = RedisCommand(strings: arguments)
    return try? blocking { () async -> RedisValue? in
        let client = RedisClient(configuration: nodeConfiguration(port))
        let reply: RedisValue?
        do {
            reply = try await client.send(command)
        } catch let error as RedisError where error.code == .serverError {
            reply = .error(error.message)
        } catch {
            reply = nil
        }
        await client.close()
        return reply
    }
}

/// The first element of `ROLE`: "master", "slave" (a replica), "sentinel".
func role(of port: Int) -> String? {
    redisCall(port, "ROLE")?.array?.first?.string
}

/// An INFO (or CLUSTER INFO) text as its `field:value` lines.
func infoFields(_ text: String?) -> [String: String] {
    var fields: [String: String] = [:]
    for line in (text ?? "").split(whereSeparator: \.isNewline) {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
            .trimmingCharacters(in: .whitespaces)
    }
    return fields
}

/// The redis-server process behind a port (`INFO server` → `process_id`), for kill -9.
func processID(of port: Int) -> pid_t? {
    infoFields(redisCall(port, "INFO", "server")?.string)["process_id"].flatMap { pid_t($0) }
}

/// A flat `[key, value, ...]` reply as a dictionary (rigkit's `pairs`).
func pairs(_ reply: RedisValue?) -> [String: String] {
    let items = reply?.array ?? []
    var fields: [String: String] = [:]
    var index = 0
    while index + 1 < items.count {
        fields[items[index].string ?? ""] = items[index + 1].string ?? ""
        index += 2
    }
    return fields
}

// MARK: Time

/// Wall-clock seconds: MONITOR's stamps and the sentinels' announcements are compared against it.
func wallClock() -> Double { Date().timeIntervalSince1970 }

/// rigkit's `wait_until`: polls until true or the timeout (monotonic), then asks once more.
func waitUntil(_ timeout: Double, every interval: Double = 0.05, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return condition()
}

// MARK: Browsers and load

/// One user's cookie jar, shared by a load's thread and the checker as rigkit's Browser object was: each response's
/// cookie changes go into the jar as it is when the response arrives, so the checker can swap the session in the jar
/// (a fresh sign-in) while a load runs with it.
final class SharedBrowser: Sendable {
    let endpoint: Endpoint
    private let jar: Mutex<[String: String]>

    init(_ endpoint: Endpoint, cookies: [String: String] = [:]) {
        self.endpoint = endpoint
        self.jar = Mutex(cookies)
    }

    var cookies: [String: String] { jar.withLock { $0 } }

    func replaceCookies(_ cookies: [String: String]) { jar.withLock { $0 = cookies } }

    private func session<T>(_ body: (inout Browser) throws -> T) rethrows -> T {
        let before = cookies
        var browser = Browser(cookies: before)
        defer {
            let after = browser.cookies
            jar.withLock { jar in
                for name in Set(before.keys).union(after.keys) where before[name] != after[name] {
                    jar[name] = after[name]
                }
            }
        }
        return try body(&browser)
    }

    /// A GET (15 s: rigkit's default).
    func get(_ path: String, timeout: Double = 15) throws -> HTTPResponse {
        try session { try $0.get(endpoint, path, timeout: timeout) }
    }

    func post(_ path: String, form: [String: String]) throws -> HTTPResponse {
        try session { try $0.post(endpoint, path, form: form, timeout: 15) }
    }

    /// The page's CSRF token, "" when there is none (rigkit's `csrf_of`).
    func csrf(_ path: String) -> String { (try? get(path))?.csrfToken ?? "" }

    /// The sign-in form's POST status (303), or nil when no answer came.
    func signIn(_ user: String, _ password: String) -> Int? {
        let token = csrf("/")
        return try? post("/login", form: ["username": user, "password": password, "csrf": token]).status
    }

    /// The settings form's POST status (303).
    func setTimezone(_ timezone: String) throws -> Int {
        let token = csrf("/settings")
        return try post("/settings", form: ["timezone": timezone, "csrf": token]).status
    }

    /// "Log out everywhere": the POST's status (303), or nil when no answer came.
    func logoutEverywhere() -> Int? {
        let token = csrf("/sessions")
        return try? post("/logout-everywhere", form: ["csrf": token]).status
    }
}

/// What a request answered, keyed as the Python checkers keyed their tallies: "ok", "signed out", the HTTP status
/// (a Python int), or a text such as "connection error TimeoutError".
enum Answer: Hashable, Sendable {
    case ok
    case signedOut
    case status(Int)
    case text(String)

    /// The key as a Python dict's repr shows it.
    var repr: String {
        switch self {
        case .ok: "'ok'"
        case .signedOut: "'signed out'"
        case .status(let status): String(status)
        case .text(let text): Py.repr(text)
        }
    }

    /// The key as json.dumps writes it: an int key becomes a string.
    var jsonKey: String {
        switch self {
        case .ok: "ok"
        case .signedOut: "signed out"
        case .status(let status): String(status)
        case .text(let text): text
        }
    }
}

/// Answers counted, in the order each first appeared (a Python dict filled in a loop).
struct Tally: Sendable {
    private(set) var kinds: [Answer] = []
    private var counts: [Answer: Int] = [:]

    init(_ answers: [Answer] = []) {
        for answer in answers { add(answer) }
    }

    mutating func add(_ answer: Answer) {
        if counts[answer] == nil { kinds.append(answer) }
        counts[answer, default: 0] += 1
    }

    /// `set(kinds) <= allowed`.
    func within(_ allowed: Set<Answer>) -> Bool { kinds.allSatisfy { allowed.contains($0) } }

    /// `set(kinds) == {"ok"}`: at least one answer, all ok.
    var onlyOK: Bool { kinds == [.ok] }

    var repr: String { "{" + kinds.map { "\($0.repr): \(counts[$0] ?? 0)" }.joined(separator: ", ") + "}" }

    var json: JSONFigure { .object(kinds.map { ($0.jsonKey, JSONFigure.int(counts[$0] ?? 0)) }) }
}

/// Signed-in page views, one thread per browser, each recorded with its wall-clock start and end and its answer.
final class PageLoad: Sendable {
    struct View: Sendable {
        let name: String
        let started: Double
        let ended: Double
        let answer: Answer
        var duration: Double { ended - started }
    }

    private let recorded = Mutex<[View]>([])
    private let running = Atomic<Bool>(true)

    /// - Parameters:
    ///   - browsers: (name, browser, the user its landing page must greet).
    ///   - pause: The sleep between two views of one browser: 0.01 s under Sentinel, 0.005 s on a cluster.
    init(_ browsers: [(name: String, browser: SharedBrowser, user: String)], pause: Double) {
        for (name, browser, user) in browsers {
            let thread = Thread { [self] in
                while running.load(ordering: .relaxed) {
                    let started = wallClock()
                    let answer: Answer
                    do {
                        let response = try browser.get("/", timeout: 20)
                        if response.status != 200 {
                            answer = .status(response.status)
                        } else {
                            answer = response.landing?.user == user ? .ok : .signedOut
                        }
                    } catch {
                        answer = .text("connection error \((error as? HTTPFailure)?.socketError ?? "OSError")")
                    }
                    let view = View(name: name, started: started, ended: wallClock(), answer: answer)
                    recorded.withLock { $0.append(view) }
                    Thread.sleep(forTimeInterval: pause)
                }
            }
            thread.start()
        }
    }

    /// Asks for no more views. A view under way is still recorded (rigkit's loads did not wait for their threads).
    func stop() { running.store(false, ordering: .relaxed) }

    /// The views that started within `start...end`, of one browser or of all.
    func views(from start: Double, to end: Double, name: String? = nil) -> [View] {
        recorded.withLock { views in
            views.filter { start <= $0.started && $0.started <= end && (name == nil || $0.name == name) }
        }
    }
}

/// What a landing page shows: whom it greets and in which timezone (rigkit's `landing`).
struct Landing: Sendable, Equatable {
    let user: String
    let timezone: String

    /// As Python showed the tuple: `('bob', 'UTC')`.
    var repr: String { "(\(Py.repr(user)), \(Py.repr(timezone)))" }
}

extension HTTPResponse {
    /// The greeting and timezone of a landing page, or nil (the sign-in page, an error page).
    var landing: Landing? {
        guard let timezone = shownTimezone, !timezone.isEmpty, let open = body.range(of: "<h1>Hello, ") else {
            return nil
        }
        let rest = body[open.upperBound...]
        guard let end = rest.firstIndex(of: "<"), end > rest.startIndex, rest[end...].hasPrefix("</h1>") else {
            return nil
        }
        return Landing(user: String(rest[..<end]), timezone: timezone)
    }
}

// MARK: Printing as Python did

/// A figure as the Python checkers' FIGURES held it, written the way Python's json module writes it.
enum JSONFigure {
    case int(Int)
    case number(Double)
    case null
    case object([(String, JSONFigure)])

    /// `indent == nil`: json.dumps (one line, ", " and ": "); otherwise json.dump(indent=2).
    func json(indent: Int? = nil, level: Int = 0) -> String {
        switch self {
        case .int(let value):
            return String(value)
        case .number(let value):
            return "\(value)"  // the shortest text that reads back, as Python's float repr: 2.0, 0.25, 1e-05
        case .null:
            return "null"
        case .object(let members):
            if members.isEmpty { return "{}" }
            guard let indent else {
                return "{" + members.map { "\(Self.quoted($0.0)): \($0.1.json())" }.joined(separator: ", ") + "}"
            }
            let inner = String(repeating: " ", count: indent * (level + 1))
            let outer = String(repeating: " ", count: indent * level)
            let lines = members.map { "\(inner)\(Self.quoted($0.0)): \($0.1.json(indent: indent, level: level + 1))" }
            return "{\n" + lines.joined(separator: ",\n") + "\n" + outer + "}"
        }
    }

    /// A JSON string as json.dumps writes it (ensure_ascii).
    static func quoted(_ text: String) -> String {
        var out = "\""
        for unit in text.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default: out += String(format: "\\u%04x", unit)
            }
        }
        return out + "\""
    }
}

/// Python's `repr`, `str`, `round` and format specs, for the lines the Python checkers printed.
enum Py {
    /// repr() of a str.
    static func repr(_ text: String) -> String {
        let quote: Character = text.contains("'") && !text.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote {
                    out += "\\" + String(quote)
                } else if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\x%02x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append(quote)
        return out
    }

    static func optional(_ text: String?) -> String { text.map { repr($0) } ?? "None" }

    static func int(_ value: Int?) -> String { value.map { String($0) } ?? "None" }

    /// str() of a float or None.
    static func float(_ value: Double?) -> String { value.map { "\($0)" } ?? "None" }

    /// repr() of what rigkit's Resp.read returned for this reply (None when the node did not answer).
    static func reply(_ value: RedisValue?) -> String {
        guard let value else { return "None" }
        switch value {
        case .simpleString(let text), .error(let text): return repr(text)
        case .bulkString: return repr(value.string ?? "")
        case .integer(let number): return String(number)
        case .null: return "None"
        case .array(let items): return "[" + items.map { reply($0) }.joined(separator: ", ") + "]"
        }
    }

    /// str() of it: a string as itself, anything else as its repr.
    static func str(_ value: RedisValue?) -> String {
        switch value {
        case .simpleString(let text)?, .error(let text)?: return text
        case .bulkString?: return value?.string ?? ""
        default: return reply(value)
        }
    }

    /// `{k: v, ...}` from keys and values already in repr form.
    static func dict(_ entries: [(String, String)]) -> String {
        "{" + entries.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
    }

    static func list(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }

    /// round(value, digits): correctly rounded from the exact binary value, as glibc's printf does it too.
    static func round(_ value: Double, _ digits: Int) -> Double {
        Double(String(format: "%.\(digits)f", value)) ?? value
    }

    /// f"{value:.Nf}".
    static func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
}
