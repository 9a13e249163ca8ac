import Testing

@testable import RedisClient

@Suite struct RedisConfigurationTests {
    @Test func parsesFullTCPURL() throws {
        let configuration = try RedisConfiguration(url: "redis://app:s%40cret@cache.internal:6380/3")
        #expect(configuration.endpoint == .tcp(host: "cache.internal", port: 6380))
        #expect(configuration.username == "app")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == 3)
    }

    @Test func parsesPasswordOnlyAndDefaults() throws {
        let passwordOnly = try RedisConfiguration(url: "redis://:secret@127.0.0.1")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "secret")
        #expect(passwordOnly.endpoint == .tcp(host: "127.0.0.1", port: 6379))
        #expect(passwordOnly.database == 0)
        let bare = try RedisConfiguration(url: "redis://")
        #expect(bare.endpoint == .tcp(host: "127.0.0.1", port: 6379))
    }

    @Test func parsesIPv6AndUnixSockets() throws {
        #expect(try RedisConfiguration(url: "redis://[::1]:7000").endpoint == .tcp(host: "::1", port: 7000))
        let unix = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=2&password=pw")
        #expect(unix.endpoint == .unixSocket(path: "/run/redis/redis.sock"))
        #expect(unix.database == 2)
        #expect(unix.password == "pw")
    }

    @Test func parsesSentinelURLs() throws {
        let url =
            "redis-sentinel://:master%20pw@10.0.0.1:26380,10.0.0.2,[::1]:26381/rsess/2"
            + "?sentinel_password=s3&sentinel_user=watch&sentinel_poll_ms=250"
        let configuration = try RedisConfiguration(url: url)
        let sentinel = try #require(configuration.sentinel)
        #expect(
            sentinel.sentinels == [
                .tcp(host: "10.0.0.1", port: 26380), .tcp(host: "10.0.0.2", port: 26379),
                .tcp(host: "::1", port: 26381),
            ])
        #expect(sentinel.masterName == "rsess")
        #expect(sentinel.password == "s3")
        #expect(sentinel.username == "watch")
        #expect(sentinel.pollInterval == .milliseconds(250))
        #expect(configuration.password == "master pw")
        #expect(configuration.database == 2)
        #expect(configuration.serverDescription.contains("master 'rsess' via sentinels 10.0.0.1:26380"))
        #expect(try RedisConfiguration(url: "redis://localhost").sentinel == nil)
    }

    @Test func theTopologyIsOneOfThreeAndHoldsOnlyWhatItNeeds() throws {
        let standalone = try RedisConfiguration(url: "redis://cache.internal:6380")
        #expect(standalone.topology == .standalone(.tcp(host: "cache.internal", port: 6380)))
        let sentinel = try RedisConfiguration(url: "redis-sentinel://10.0.0.1:26379/rsess")
        guard case .sentinel = sentinel.topology else {
            Issue.record("a sentinel URL gave \(sentinel.topology)")
            return
        }
        #expect(sentinel.endpoint == nil && sentinel.cluster == nil && sentinel.tls == nil)
        let cluster = try RedisConfiguration(url: "redis-cluster://10.0.0.1:7000,10.0.0.2:7000")
        #expect(
            cluster.topology
                == .cluster(.init(seeds: [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 7000)])))
        #expect(cluster.endpoint == nil && cluster.sentinel == nil)
    }

    @Test(arguments: [
        ("redis-sentinel://10.0.0.1:26379", "master's name is missing"),
        ("redis-sentinel://10.0.0.1:26379/", "master's name is missing"),
        ("redis-sentinel://10.0.0.1:26379,,10.0.0.2/rsess", "empty sentinel address"),
        ("redis-sentinel://10.0.0.1:0/rsess", "port '0'"),
        ("redis-sentinel://10.0.0.1/rsess/x", "database 'x'"),
        ("redis-sentinel://10.0.0.1/rsess/1/extra", "unexpected 'extra'"),
        ("redis-sentinel://10.0.0.1/rsess?sentinel_poll_ms=0", "sentinel_poll_ms '0'"),
        ("redis-sentinel://10.0.0.1/rsess?colour=blue", "unknown URL parameter 'colour'"),
    ])
    func rejectsBadSentinelURLs(url: String, problem: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(problem), "\(error.message)")
        }
    }

    @Test func parsesTLSOnEveryTopology() throws {
        let standalone = try RedisConfiguration(url: "rediss://:pw@redis.example.com:6380/3")
        #expect(standalone.endpoint == .tcp(host: "redis.example.com", port: 6380))
        #expect(standalone.tls == RedisConfiguration.TLS())
        #expect(standalone.tlsServerName == "redis.example.com")
        #expect(standalone.password == "pw" && standalone.database == 3)
        let mutual = try RedisConfiguration(
            url: "rediss://redis.example.com?ca=/etc/ca%20bundle.pem&cert=/etc/c.crt&key=/etc/c.key&sni=cache.internal")
        #expect(
            mutual.tls
                == RedisConfiguration.TLS(
                    caFile: "/etc/ca bundle.pem", certificateFile: "/etc/c.crt", keyFile: "/etc/c.key",
                    serverName: "cache.internal"))
        #expect(mutual.tlsServerName == "cache.internal")
        let sentinel = try RedisConfiguration(url: "rediss-sentinel://s1.internal:26380,s2.internal/rsess?ca=/ca.pem")
        #expect(sentinel.sentinel?.sentinels.count == 2 && sentinel.tls?.caFile == "/ca.pem")
        // Announced nodes are addresses: every node is verified against the first configured host.
        #expect(sentinel.tlsServerName == "s1.internal")
        let cluster = try RedisConfiguration(url: "rediss-cluster://clustercfg.example.com:6379?refresh_ms=500")
        #expect(cluster.cluster?.refreshInterval == .milliseconds(500) && cluster.tlsServerName == "clustercfg.example.com")
        let insecure = try RedisConfiguration(url: "rediss://10.0.0.5?verify=none")
        #expect(insecure.tls?.verification == .insecureNoVerification)
        #expect(try RedisConfiguration(url: "redis://redis.example.com").tls == nil)
    }

    @Test(arguments: [
        ("", "empty"),
        ("127.0.0.1:6379", "missing scheme"),
        ("http://localhost", "unsupported scheme"),
        ("rediss://redis.example.com?tunnel=127.0.0.1:6380", "tunnel= is gone: TLS runs in the client now"),
        ("redis://localhost?tunnel=127.0.0.1:6380", "tunnel= is gone"),
        ("redis://localhost?ca=/ca.pem", "ca= configures TLS: it belongs to rediss://"),
        ("redis-cluster://10.0.0.1:7000?sni=x", "sni= configures TLS"),
        ("rediss://localhost?cert=/c.crt", "cert= and key= go together"),
        ("rediss://localhost?verify=full", "the only value is none"),
        ("rediss://localhost?ca=", "ca= is empty"),
        ("rediss+unix:///run/redis.sock", "unsupported scheme"),
        ("redis://localhost:0", "port '0'"),
        ("redis://localhost:99999", "port '99999'"),
        ("redis://localhost:abc", "port 'abc'"),
        ("redis://localhost/x", "database 'x'"),
        ("redis://localhost/-1", "database '-1'"),
        ("redis://[::1", "missing its ']'"),
        ("unix://relative.sock", "must be absolute"),
        ("redis://localhost?timeout=3", "unknown URL parameter 'timeout'"),
        ("redis://:bad%zz@localhost", "percent-escape"),
    ])
    func rejectsBadURLsNamingTheProblem(url: String, problem: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(problem), "\(error.message)")
        }
    }

    @Test func errorsNeverRepeatThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://user:hunter2@localhost:notaport")
            Issue.record("accepted a bad port")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("user:***@"))
        }
    }

    @Test func backoffGrowsWithJitterAndIsCapped() {
        let backoff = RedisConfiguration.Backoff(initialDelay: .milliseconds(100), maximumDelay: .seconds(1))
        for _ in 0..<100 {
            let first = backoff.delay(attempt: 0)
            #expect(first >= .milliseconds(50) && first <= .milliseconds(100))
            let late = backoff.delay(attempt: 30)
            #expect(late >= .milliseconds(500) && late <= .seconds(1))
        }
    }
}
