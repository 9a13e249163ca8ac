import ArgumentParser
import Foundation
import Hummingbird
import Logging
import RedisClient
import RedisSession
import SettingsSync
import WebTierApp

/// `webtier`: one instance of the demo web tier. Run several behind a load balancer, all on one Redis.
@main
struct WebTierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webtier",
        abstract: "One instance of the demo web tier: sessions in Redis, settings synchronised across instances.",
        discussion: """
            Every option can also be set with the environment variable named in its help. \
            Demo users (--seed-demo-users): alice / wonderland (Europe/Paris), bob / builder (America/New_York).
            """)

    @Option(help: "Port to listen on (env PORT).")
    var port: Int = Self.environment("PORT").flatMap(Int.init) ?? 8080

    @Option(help: "Address to bind; 0.0.0.0 in a container (env HOST).")
    var host: String = Self.environment("HOST") ?? "127.0.0.1"

    @Option(
        help: """
            Port of the admin listener: /healthz with its reasons, /stats and /metrics, which the site's port does \
            not serve; 0 for none (env ADMIN_PORT; default 0).
            """)
    var adminPort: Int = Self.environment("ADMIN_PORT").flatMap(Int.init) ?? 0

    @Option(help: "Address the admin listener binds; keep it off the load balancer's network (env ADMIN_HOST).")
    var adminHost: String = Self.environment("ADMIN_HOST") ?? "127.0.0.1"

    @Option(
        help: """
            Proxies whose X-Forwarded-For is believed, as addresses and CIDR networks: 10.0.0.0/8,192.168.1.5. \
            Behind them the client is the right-most hop that is not one of them; with none, the header is ignored \
            (env TRUSTED_PROXIES; default: none).
            """)
    var trustedProxies: String = Self.environment("TRUSTED_PROXIES") ?? ""

    @Option(
        help: """
            A file holding the session encryption keys, one id:base64 pair per line or comma separated; the first \
            encrypts, all decrypt (env SESSION_KEYS_FILE). The keys may also come from the environment variable \
            SESSION_KEYS itself; never from a URL or an argument, which end up in logs and process lists.
            """)
    var sessionKeysFile: String = Self.environment("SESSION_KEYS_FILE") ?? ""

    @Option(help: "This instance's name, sent as X-Instance (env INSTANCE_ID; default: the host name).")
    var instanceID: String = Self.environment("INSTANCE_ID") ?? ProcessInfo.processInfo.hostName

    @Option(
        help: """
            Redis URL: redis://[[user]:password@]host[:port][/db], unix:///path, \
            redis-sentinel://host:port,.../master, redis-cluster://host:port,..., and the same with TLS as \
            rediss://, rediss-sentinel://, rediss-cluster:// (?ca=PATH for a private CA; docs/TLS.md) \
            (env REDIS_URL; default redis://127.0.0.1:6379).
            """)
    var redisURL: String = Self.environment("REDIS_URL") ?? "redis://127.0.0.1:6379"

    @Option(help: "Prefix of every Redis key and of the events channel (env RSESS_PREFIX).")
    var prefix: String = Self.environment("RSESS_PREFIX") ?? "rsess:"

    // Each flag has a --no- form because its default comes from the environment: ArgumentParser rejects a plain
    // flag whose default is true, so SECURE_COOKIES=on would otherwise stop the instance at start.
    @Flag(inversion: .prefixedNo, help: "Mark cookies Secure, for deployments behind HTTPS (env SECURE_COOKIES=on).")
    var secureCookies: Bool = Self.flag("SECURE_COOKIES")

    @Flag(inversion: .prefixedNo, help: "Create the demo users if absent (env SEED_DEMO_USERS=on).")
    var seedDemoUsers: Bool = Self.flag("SEED_DEMO_USERS")

    @Option(help: "Settings cache policy on change events: refresh or invalidate (env CACHE_POLICY).")
    var cachePolicy: String = Self.environment("CACHE_POLICY") ?? "refresh"

    @Option(
        help: """
            Serve repeated session reads from this instance's memory, kept exact by Redis key tracking: on or off \
            (env SESSION_CACHE).
            """)
    var sessionCache: String = Self.environment("SESSION_CACHE") ?? "on"

    @Option(
        help: """
            Which session writes Redis reports to this instance's session cache: holders (only the sessions this \
            instance read; pair with session affinity at the load balancer) or broadcast (every write, to every \
            instance) (env SESSION_TRACKING).
            """)
    var sessionTracking: String = Self.environment("SESSION_TRACKING") ?? SessionTracking.holders.rawValue

    /// One connection, pipelining every request of the instance, measured best on the 2-core machine this was tuned
    /// on: a second connection thread competes with the HTTP server's threads for the cores (21k vs 17k req/s).
    @Option(help: "Redis connections in the pool; each pipelines automatically (env REDIS_POOL_SIZE).")
    var redisPoolSize: Int = Self.environment("REDIS_POOL_SIZE").flatMap(Int.init) ?? 1

    @Option(
        help: """
            Microseconds a Redis connection thread polls for a reply before sleeping; 0 saves CPU at the cost \
            of a thread wake-up per round trip (env REDIS_BUSY_POLL_US).
            """)
    var redisBusyPollMicroseconds: Int =
        Self.environment("REDIS_BUSY_POLL_US").flatMap(Int.init)
        ?? Int(RedisConfiguration().busyPollWindow / .microseconds(1))

    @Option(
        help: """
            Folder with htmx.min.js (scripts/fetch-htmx installs it); without it pages work as plain forms \
            (env PUBLIC_DIR).
            """)
    var publicDir: String = Self.environment("PUBLIC_DIR") ?? "Public"

    @Option(
        help: """
            The site's host name as browsers see it; a login POST from another origin is refused (env PUBLIC_HOST; \
            default: the request's Host header).
            """)
    var publicHost: String = Self.environment("PUBLIC_HOST") ?? ""

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env LOG_LEVEL).")
    var logLevel: String = Self.environment("LOG_LEVEL") ?? "info"

    func validate() throws {
        // An environment variable that is set but not a number must not fall back to the default silently.
        for name in ["PORT", "ADMIN_PORT", "REDIS_POOL_SIZE", "REDIS_BUSY_POLL_US"] {
            if let value = Self.environment(name), Int(value) == nil {
                throw ValidationError("\(name) must be an integer, not '\(value)'")
            }
        }
        // Nor a switch: SECURE_COOKIES=on must not leave cookies insecure.
        for name in ["SECURE_COOKIES", "SEED_DEMO_USERS"] {
            if let value = Self.environment(name), Self.switchValue(value) == nil {
                throw ValidationError("\(name) must be on or off (or 1/0, true/false, yes/no), not '\(value)'")
            }
        }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        if adminPort != 0 {
            guard (1...65535).contains(adminPort) else {
                throw ValidationError("--admin-port must be between 1 and 65535, or 0 for none")
            }
            guard adminPort != port else { throw ValidationError("--admin-port must differ from --port") }
        }
        do {
            _ = try TrustedProxies(trustedProxies)
        } catch {
            throw ValidationError("--trusted-proxies (env TRUSTED_PROXIES): \(error)")
        }
        do {
            _ = try sessionEncryption()
        } catch {
            throw ValidationError(error.message)
        }
        guard !instanceID.isEmpty else { throw ValidationError("--instance-id must not be empty") }
        guard (1...64).contains(redisPoolSize) else {
            throw ValidationError("--redis-pool-size must be between 1 and 64")
        }
        guard (0...1000).contains(redisBusyPollMicroseconds) else {
            throw ValidationError("--redis-busy-poll-microseconds must be between 0 and 1000")
        }
        guard !prefix.isEmpty else { throw ValidationError("--prefix must not be empty") }
        guard SessionKeys.isValidPrefix(prefix) else {
            throw ValidationError("--prefix (env RSESS_PREFIX) cannot contain '{' or '}': Redis would hash keys by it")
        }
        guard Self.switchValue(sessionCache) != nil else {
            throw ValidationError("--session-cache (env SESSION_CACHE) must be on or off, not '\(sessionCache)'")
        }
        guard SessionTracking(rawValue: sessionTracking) != nil else {
            throw ValidationError(
                "--session-tracking (env SESSION_TRACKING) must be holders or broadcast, not '\(sessionTracking)'")
        }
        guard ["refresh", "invalidate"].contains(cachePolicy) else {
            throw ValidationError("--cache-policy must be refresh or invalidate")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown --log-level '\(logLevel)'")
        }
        do {
            _ = try RedisConfiguration(url: redisURL)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label) }
        var logger = Logger(label: "webtier")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        logger[metadataKey: "rsess.instance"] = "\(instanceID)"
        var redis = try RedisConfiguration(url: redisURL)
        redis.connectTimeout = .milliseconds(500)
        redis.commandTimeout = .seconds(1)
        redis.poolSize = redisPoolSize
        redis.busyPollWindow = .microseconds(redisBusyPollMicroseconds)
        // Reconnect attempts at most every half second: after a Redis restart the instance is healthy again within
        // that, and the attempts of a whole fleet are still nothing to Redis.
        redis.reconnectBackoff = .init(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(500))
        let proxies = try TrustedProxies(trustedProxies)
        let encryption = try sessionEncryption()
        let configuration = WebTierConfiguration(
            instanceID: instanceID, host: host, port: port, adminHost: adminHost,
            adminPort: adminPort == 0 ? nil : adminPort, trustedProxies: proxies, redis: redis, keyPrefix: prefix,
            secureCookies: secureCookies,
            sessions: SessionStoreConfiguration(keyPrefix: prefix, encryption: encryption),
            cache: .init(policy: cachePolicy == "invalidate" ? .invalidate : .refresh),
            sessionCache: Self.switchValue(sessionCache) == true
                ? .init(tracking: SessionTracking(rawValue: sessionTracking) ?? .holders) : nil,
            seedDemoUsers: seedDemoUsers, publicDirectory: publicDir, publicHost: publicHost.isEmpty ? nil : publicHost,
            reloadSessionKeys: { [sessionKeysFile] in try Self.sessionEncryption(file: sessionKeysFile) })
        logger.info(
            "starting",
            metadata: [
                "rsess.listen": "\(host):\(port)", "rsess.admin": "\(adminPort == 0 ? "off" : "\(adminHost):\(adminPort)")",
                "rsess.trusted_proxies": "\(proxies)",
                "rsess.encryption": "\(encryption.map { "keys " + $0.keys.map(\.id).joined(separator: ",") } ?? "off")", "rsess.redis": "\(redis.serverDescription)", "rsess.prefix": "\(prefix)",
                "rsess.session_cache": "\(configuration.sessionCache.map { "on, \($0.tracking)" } ?? "off")",
            ])
        let app = buildApplication(configuration: configuration, logger: logger)
        try await app.runService()
        logger.info("stopped")
    }

    /// The session encryption keys from `--session-keys-file` or `SESSION_KEYS`, or `nil` when neither is given.
    func sessionEncryption() throws(SessionError) -> SessionEncryption? {
        try Self.sessionEncryption(file: sessionKeysFile)
    }

    /// The keys from `file` (when not empty) or `SESSION_KEYS`; also what `SIGHUP` reads again.
    static func sessionEncryption(file sessionKeysFile: String) throws(SessionError) -> SessionEncryption? {
        var text = Self.environment("SESSION_KEYS")
        if !sessionKeysFile.isEmpty {
            guard text == nil else {
                throw SessionError(.invalidValue, "give the session keys in SESSION_KEYS or in a file, not both")
            }
            guard let data = FileManager.default.contents(atPath: sessionKeysFile) else {
                throw SessionError(.invalidValue, "cannot read the session keys file \(sessionKeysFile)")
            }
            text = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
                .filter { !$0.hasPrefix("#") && !$0.allSatisfy(\.isWhitespace) }.joined(separator: ",")
        }
        guard let text, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        return try SessionEncryption(parsing: text)
    }

    static func environment(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }

    /// `on` / `off` (and the usual spellings of each), or `nil` for anything else.
    static func switchValue(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "on", "1", "true", "yes": true
        case "off", "0", "false", "no": false
        default: nil
        }
    }

    /// An environment switch: on when set to one of ``switchValue(_:)``'s spellings of on.
    static func flag(_ name: String) -> Bool {
        environment(name).flatMap(switchValue) ?? false
    }
}
