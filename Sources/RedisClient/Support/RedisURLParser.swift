/// Parses `redis://` and `unix://` URLs without Foundation, so that every mistake gets a message of its own.
struct RedisURLParser {
    let text: String

    init(_ text: String) { self.text = text }

    func apply(to configuration: inout RedisConfiguration) throws(RedisError) {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw invalid("the URL is empty") }
        guard let schemeEnd = trimmed.firstRange(of: "://") else {
            throw invalid("missing scheme: expected redis://host[:port][/db] or unix:///path")
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        let rest = trimmed[schemeEnd.upperBound...]
        // rediss, rediss-sentinel, rediss-cluster: the same topology with TLS to every node.
        let secure = scheme == "rediss" || scheme.hasPrefix("rediss-")
        let base = secure ? "redis" + scheme.dropFirst("rediss".count) : scheme
        configuration.tls = secure ? RedisConfiguration.TLS() : nil
        switch base {
        case "redis": try applyTCP(rest, to: &configuration)
        case "unix", "redis+unix", "redis-socket": try applyUnix(rest, to: &configuration)
        case "redis-sentinel": try applySentinel(rest, to: &configuration)
        case "redis-cluster": try applyCluster(rest, to: &configuration)
        default:
            throw invalid(
                "unsupported scheme '\(scheme)': expected redis://, rediss://, redis-sentinel://, rediss-sentinel://, "
                    + "redis-cluster://, rediss-cluster:// or unix://")
        }
        if let tls = configuration.tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw invalid("cert= and key= go together: a client certificate needs its private key")
        }
    }

    /// `redis-sentinel://[[user]:password@]host1:port1,host2:port2/<master-name>[/db][?sentinel_password=...]`
    private func applySentinel(_ rest: Substring, to configuration: inout RedisConfiguration) throws(RedisError) {
        let (remainder, query) = Self.splitQuery(rest)
        guard let slash = remainder.firstIndex(of: "/") else {
            throw invalid("the master's name is missing: redis-sentinel://host:26379[,host:26379...]/<master-name>")
        }
        let path = remainder[remainder.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        var hosts = remainder[..<slash]
        if let at = hosts.lastIndex(of: "@") {
            try applyUserInfo(hosts[..<at], to: &configuration)
            hosts = hosts[hosts.index(after: at)...]
        }
        var sentinels: [RedisConfiguration.Endpoint] = []
        for host in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            guard !host.isEmpty else { throw invalid("an empty sentinel address in '\(hosts)'") }
            let (name, port) = try parseHostPort(host, defaultPort: 26379)
            sentinels.append(.tcp(host: name, port: port))
        }
        guard !sentinels.isEmpty else { throw invalid("no sentinel address") }
        guard let name = path.first, !name.isEmpty else {
            throw invalid("the master's name is missing: redis-sentinel://host:26379[,host:26379...]/<master-name>")
        }
        guard path.count <= 2 else {
            throw invalid("unexpected '\(path.dropFirst(2).joined(separator: "/"))' after the database")
        }
        if path.count == 2, !path[1].isEmpty {
            guard let database = Int(path[1]), database >= 0 else {
                throw invalid("database '\(path[1])' is not a non-negative integer")
            }
            configuration.database = database
        }
        var sentinel = RedisConfiguration.Sentinel(
            sentinels: sentinels, masterName: try percentDecoded(name, what: "master name"))
        var remaining: [Substring] = []
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count > 1 ? parts[1] : ""
            switch parts[0].lowercased() {
            case "sentinel_password": sentinel.password = try percentDecoded(value, what: "sentinel password")
            case "sentinel_user", "sentinel_username":
                sentinel.username = try percentDecoded(value, what: "sentinel user name")
            case "sentinel_poll_ms":
                guard let milliseconds = Int(value), milliseconds > 0 else {
                    throw invalid("sentinel_poll_ms '\(value)' is not a positive number of milliseconds")
                }
                sentinel.pollInterval = .milliseconds(milliseconds)
            default: remaining.append(pair)
            }
        }
        configuration.topology = .sentinel(sentinel)
        try applyQuery(Substring(remaining.joined(separator: "&")), to: &configuration)
    }

    /// `redis-cluster://[[user]:password@]host:port[,host:port...][?refresh_ms=N]`
    private func applyCluster(_ rest: Substring, to configuration: inout RedisConfiguration) throws(RedisError) {
        let (head, query) = Self.splitQuery(rest)
        var remainder = head
        if let slash = remainder.firstIndex(of: "/") {
            let path = remainder[remainder.index(after: slash)...]
            guard path.isEmpty || path == "0" else { throw invalid("a cluster has only database 0, not '\(path)'") }
            remainder = remainder[..<slash]
        }
        if let at = remainder.lastIndex(of: "@") {
            try applyUserInfo(remainder[..<at], to: &configuration)
            remainder = remainder[remainder.index(after: at)...]
        }
        var seeds: [RedisConfiguration.Endpoint] = []
        for host in remainder.split(separator: ",", omittingEmptySubsequences: false) {
            guard !host.isEmpty else { throw invalid("an empty node address in '\(remainder)'") }
            let (name, port) = try parseHostPort(host)
            seeds.append(.tcp(host: name, port: port))
        }
        guard !seeds.isEmpty else { throw invalid("no seed node") }
        var cluster = RedisConfiguration.Cluster(seeds: seeds)
        var remaining: [Substring] = []
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count > 1 ? parts[1] : ""
            if parts[0].lowercased() == "refresh_ms" {
                guard let milliseconds = Int(value), milliseconds > 0 else {
                    throw invalid("refresh_ms '\(value)' is not a positive number of milliseconds")
                }
                cluster.refreshInterval = .milliseconds(milliseconds)
            } else {
                remaining.append(pair)
            }
        }
        configuration.topology = .cluster(cluster)
        try applyQuery(Substring(remaining.joined(separator: "&")), to: &configuration)
        guard configuration.database == 0 else { throw invalid("a cluster has only database 0") }
    }

    /// `rest` before the first `?`, and what follows it.
    private static func splitQuery(_ rest: Substring) -> (Substring, Substring) {
        guard let questionMark = rest.firstIndex(of: "?") else { return (rest, "") }
        return (rest[..<questionMark], rest[rest.index(after: questionMark)...])
    }

    private func applyTCP(_ rest: Substring, to configuration: inout RedisConfiguration) throws(RedisError) {
        let (head, query) = Self.splitQuery(rest)
        var remainder = head
        var path: Substring = ""
        if let slash = remainder.firstIndex(of: "/") {
            path = remainder[remainder.index(after: slash)...]
            remainder = remainder[..<slash]
        }
        var hostPort = remainder
        if let at = remainder.lastIndex(of: "@") {
            try applyUserInfo(remainder[..<at], to: &configuration)
            hostPort = remainder[remainder.index(after: at)...]
        }
        let (host, port) = try parseHostPort(hostPort)
        configuration.topology = .standalone(.tcp(host: host, port: port))
        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else {
                throw invalid("database '\(path)' is not a non-negative integer")
            }
            configuration.database = database
        }
        try applyQuery(query, to: &configuration)
    }

    private func applyUnix(_ rest: Substring, to configuration: inout RedisConfiguration) throws(RedisError) {
        let (head, query) = Self.splitQuery(rest)
        var path = head
        if let at = path.lastIndex(of: "@"), !path.hasPrefix("/") {
            try applyUserInfo(path[..<at], to: &configuration)
            path = path[path.index(after: at)...]
        }
        guard path.hasPrefix("/") else { throw invalid("socket path must be absolute: unix:///path/to/redis.sock") }
        guard path.count > 1 else { throw invalid("socket path is empty") }
        configuration.topology = .standalone(.unixSocket(path: try percentDecoded(path, what: "socket path")))
        try applyQuery(query, to: &configuration)
    }

    private func applyUserInfo(_ userInfo: Substring, to configuration: inout RedisConfiguration) throws(RedisError) {
        if let colon = userInfo.firstIndex(of: ":") {
            let user = userInfo[..<colon]
            let password = userInfo[userInfo.index(after: colon)...]
            configuration.username = user.isEmpty ? nil : try percentDecoded(user, what: "user name")
            configuration.password = try percentDecoded(password, what: "password")
        } else if !userInfo.isEmpty {
            // `redis://secret@host` is the historical way to give only a password.
            configuration.password = try percentDecoded(userInfo, what: "password")
        }
    }

    private func parseHostPort(_ hostPort: Substring, defaultPort: Int = 6379) throws(RedisError) -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("IPv6 host is missing its ']'") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected '\(after)' after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        if host.isEmpty { host = "127.0.0.1" }
        guard !host.contains(where: { $0 == " " || $0 == "/" || $0 == "@" }) else {
            throw invalid("host '\(host)' is not a valid host name")
        }
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw invalid("port '\(portText)' is not a number between 1 and 65535")
            }
            port = value
        }
        return (String(host), port)
    }

    private func applyQuery(_ query: Substring, to configuration: inout RedisConfiguration) throws(RedisError) {
        guard !query.isEmpty else { return }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0].lowercased()
            let value = parts.count > 1 ? parts[1] : ""
            switch key {
            case "db", "database":
                guard let database = Int(value), database >= 0 else {
                    throw invalid("database '\(value)' is not a non-negative integer")
                }
                configuration.database = database
            case "password": configuration.password = try percentDecoded(value, what: "password")
            case "user", "username": configuration.username = try percentDecoded(value, what: "user name")
            case "tunnel":
                throw invalid(
                    "tunnel= is gone: TLS runs in the client now, so connect straight to the server's TLS port "
                        + "(rediss://host:port, with ca=PATH when its CA is not in the system's trust store) and "
                        + "stop the tunnel")
            case "ca", "cert", "key", "sni", "verify":
                guard var tls = configuration.tls else {
                    throw invalid("\(key)= configures TLS: it belongs to rediss://, rediss-sentinel:// or rediss-cluster://")
                }
                let text = try percentDecoded(value, what: key)
                guard !text.isEmpty else { throw invalid("\(key)= is empty") }
                switch key {
                case "ca": tls.caFile = text
                case "cert": tls.certificateFile = text
                case "key": tls.keyFile = text
                case "sni": tls.serverName = text
                default:
                    guard text == "none" else {
                        throw invalid("verify='\(text)': the only value is none (check no certificate); leave it out to verify")
                    }
                    tls.verification = .insecureNoVerification
                }
                configuration.tls = tls
            default:
                throw invalid(
                    "unknown URL parameter '\(key)': expected db, password, user, sentinel_password, sentinel_user, "
                        + "sentinel_poll_ms, refresh_ms, or with rediss: ca, cert, key, sni, verify")
            }
        }
    }

    private func percentDecoded(_ text: Substring, what: String) throws(RedisError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw invalid("bad percent-escape in the \(what)")
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private func invalid(_ problem: String) -> RedisError {
        RedisError(.invalidConfiguration, "invalid Redis URL: \(problem)", context: redactedURL)
    }

    /// The URL as it may appear in an error: never with its password.
    private var redactedURL: String {
        guard let schemeEnd = text.firstRange(of: "://"), let at = text.lastIndex(of: "@"), at > schemeEnd.upperBound
        else { return text }
        let userInfo = text[schemeEnd.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else {
            return String(text[..<schemeEnd.upperBound]) + "***" + String(text[at...])
        }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let scalars = self[...]
        guard let first = scalars.firstIndex(where: { !$0.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return Substring(scalars[first...last])
    }
}
