public import RedisClient
public import RedisSession
public import SettingsSync

/// Everything one web-tier instance needs to know.
public struct WebTierConfiguration: Sendable {
    /// This instance's name: the `X-Instance` header, the `origin` of its events, its Redis client names.
    public var instanceID: String
    /// Address to bind (`127.0.0.1` on a host, `0.0.0.0` in a container).
    public var host: String
    /// Port to listen on.
    public var port: Int
    /// Address of the admin listener (`/healthz` with reasons, `/stats`, `/metrics`). Default `127.0.0.1`: only
    /// this host, never the load balancer's clients.
    public var adminHost: String
    /// Port of the admin listener, or `nil` for none (then `/stats` and `/metrics` are not served at all).
    public var adminPort: Int?
    /// How to read the session encryption keys again, on `SIGHUP` (``SessionKeysReloader``), or `nil` for keys
    /// that never change at run time.
    public var reloadSessionKeys: (@Sendable () throws -> SessionEncryption?)?
    /// The proxies whose `X-Forwarded-For` is believed. Default none: the client is the connection's peer, for the
    /// login limits and the device labels alike.
    public var trustedProxies: TrustedProxies
    /// The Redis server shared by every instance.
    public var redis: RedisConfiguration
    /// Key prefix of every Redis key and of the events channel.
    public var keyPrefix: String
    /// Whether cookies carry `Secure` (set it behind HTTPS).
    public var secureCookies: Bool
    /// Session timeouts and limits.
    public var sessions: SessionStoreConfiguration
    /// Settings cache size, staleness bound and policy.
    public var cache: UserSettingsCache.Configuration
    /// The session cache's bounds, or `nil` to read every session from Redis on every request.
    public var sessionCache: SessionCache.Configuration?
    /// bcrypt cost for new password hashes (tests use 4).
    public var bcryptCost: UInt8
    /// Failed logins per account and client before each further attempt must wait (1 s, doubling); then `429`.
    public var loginFailureLimit: Int
    /// The longest back-off, and the window of the per-client count of attempts.
    public var loginFailureWindow: Duration
    /// Whether to create the demo users at start.
    public var seedDemoUsers: Bool
    /// The folder holding `htmx.min.js` (installed by `scripts/fetch-htmx`), or `nil`: pages then load no script
    /// and work as plain forms.
    public var publicDirectory: String?
    /// The host name browsers use for this site (`sessions.example.com`): the login form refuses a POST whose
    /// `Origin` (or `Referer`) names another host. `nil` compares with the request's `Host` header.
    public var publicHost: String?
    /// How long a client may take to send a request head (also how long a kept-alive connection may stay idle).
    /// Default 10 s.
    public var requestHeadTimeout: Duration
    /// How long a client may take to send a request body. Default 30 s.
    public var requestBodyTimeout: Duration

    /// Creates a configuration; every argument but the Redis configuration has a default.
    public init(
        instanceID: String = "web",
        host: String = "127.0.0.1",
        port: Int = 8080,
        adminHost: String = "127.0.0.1",
        adminPort: Int? = nil,
        trustedProxies: TrustedProxies = .none,
        redis: RedisConfiguration,
        keyPrefix: String = "rsess:",
        secureCookies: Bool = false,
        sessions: SessionStoreConfiguration? = nil,
        cache: UserSettingsCache.Configuration = .init(),
        sessionCache: SessionCache.Configuration? = .init(),
        bcryptCost: UInt8 = 10,
        loginFailureLimit: Int = 5,
        loginFailureWindow: Duration = .seconds(300),
        seedDemoUsers: Bool = false,
        publicDirectory: String? = nil,
        publicHost: String? = nil,
        requestHeadTimeout: Duration = .seconds(10),
        requestBodyTimeout: Duration = .seconds(30),
        reloadSessionKeys: (@Sendable () throws -> SessionEncryption?)? = nil
    ) {
        precondition(requestHeadTimeout > .zero && requestBodyTimeout > .zero, "request timeouts must be positive")
        precondition((4...31).contains(bcryptCost), "bcrypt cost must be within 4...31")
        self.instanceID = instanceID
        self.host = host
        self.port = port
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.trustedProxies = trustedProxies
        self.redis = redis
        self.keyPrefix = keyPrefix
        self.secureCookies = secureCookies
        self.sessions = sessions ?? SessionStoreConfiguration(keyPrefix: keyPrefix)
        self.cache = cache
        self.sessionCache = sessionCache
        self.bcryptCost = bcryptCost
        self.loginFailureLimit = loginFailureLimit
        self.loginFailureWindow = loginFailureWindow
        self.seedDemoUsers = seedDemoUsers
        self.publicDirectory = publicDirectory
        self.publicHost = publicHost
        self.requestHeadTimeout = requestHeadTimeout
        self.requestBodyTimeout = requestBodyTimeout
        self.reloadSessionKeys = reloadSessionKeys
    }
}
