#if Hummingbird
public import CoreMetrics
public import HTTPTypes
public import Hummingbird
public import Logging
public import RedisClient
public import RedisSession
public import ServiceLifecycle
public import SettingsSync

/// Everything one web instance needs, built from one key prefix so that the parts agree: the session store and its
/// cache, the cookie, the settings store, the events bus, the settings cache and the flows, and the services that
/// run them.
///
/// ```swift
/// let kit = RedisSessionKit(client: client, configuration: .init(instanceID: "web-1"))
/// let router = Router(context: AppContext.self)
/// router.add(middleware: kit.middleware(for: AppContext.self))
/// let app = Application(router: router, services: kit.services)
/// ```
public struct RedisSessionKit: Sendable {
    /// How the parts are configured.
    public struct Configuration: Sendable {
        /// The one key prefix of every key and channel (default `rsess:`).
        public var keyPrefix: String
        /// This instance's name: the origin of its events, and the prefix of its connections' names.
        public var instanceID: String
        /// Timeouts and limits of sessions; its key prefix is replaced by ``keyPrefix``.
        public var sessions: SessionStoreConfiguration
        /// The session cache, or `nil` to read every session from Redis.
        public var sessionCache: SessionCache.Configuration?
        /// The settings cache.
        public var settingsCache: UserSettingsCache.Configuration
        /// Whether the session cookie is `Secure` (sent over HTTPS only), and so named `__Host-rsess`. Default
        /// `true`.
        public var secureCookies: Bool
        /// The proxies whose `X-Forwarded-For` is believed (``RedisSessionKit/clientAddress(peer:headers:)``).
        /// Default none: the header is ignored and the client is the connection's peer.
        public var trustedProxies: TrustedProxies

        /// Creates a configuration; everything but the instance's name has a default.
        public init(
            instanceID: String, keyPrefix: String = "rsess:",
            sessions: SessionStoreConfiguration = SessionStoreConfiguration(),
            sessionCache: SessionCache.Configuration? = SessionCache.Configuration(),
            settingsCache: UserSettingsCache.Configuration = UserSettingsCache.Configuration(),
            secureCookies: Bool = true, trustedProxies: TrustedProxies = .none
        ) {
            self.instanceID = instanceID
            self.keyPrefix = keyPrefix
            self.sessions = sessions
            self.sessionCache = sessionCache
            self.settingsCache = settingsCache
            self.secureCookies = secureCookies
            self.trustedProxies = trustedProxies
        }
    }

    /// The Redis pool every part sends on.
    public let client: RedisClient
    /// Sessions.
    public let store: RedisSessionStore
    /// The instance's session cache, if configured (the store's own): for its statistics.
    public let sessionCache: SessionCache?
    /// The session cookie: `Max-Age` the absolute lifetime (it is sent only when the ID changes).
    public let cookie: SessionCookie
    /// Users' settings records.
    public let settings: UserSettingsStore
    /// The events channel.
    public let bus: SessionEventBus
    /// The instance's settings cache.
    public let settingsCache: UserSettingsCache
    /// Login, settings and logout, publishing their events.
    public let flows: SessionFlows
    /// The metrics, when the kit was given a factory.
    public let metrics: RedisSessionMetrics?
    /// The proxies whose `X-Forwarded-For` is believed.
    public let trustedProxies: TrustedProxies

    /// Builds the parts.
    ///
    /// - Parameters:
    ///   - client: The pool; its configuration also opens the caches' dedicated connections.
    ///   - configuration: The key prefix, the instance's name and the parts' settings.
    ///   - metrics: Where to register metrics (``RedisSessionMetrics``), or `nil` for none.
    ///   - logger: Where the caches say when they stop and start serving from memory.
    public init(
        client: RedisClient, configuration: Configuration, metrics: (any MetricsFactory)? = nil,
        logger: Logger = Logger(label: "rsess")
    ) {
        let prefix = configuration.keyPrefix
        let instance = configuration.instanceID
        let recorder = metrics.map { RedisSessionMetrics(factory: $0) }
        var sessions = configuration.sessions
        sessions.keyPrefix = prefix
        var cacheConfiguration = configuration.sessionCache
        if cacheConfiguration != nil && cacheConfiguration?.subscriberName == nil {
            cacheConfiguration?.subscriberName = "\(instance)-cache"
        }
        let store = RedisSessionStore(
            client: client, configuration: sessions, cache: cacheConfiguration,
            cacheObserver: { event in
                switch event {
                case .tracking:
                    logger.info("session cache tracking: sessions served again are kept in memory")
                case .disconnected(let error):
                    logger.warning(
                        "session cache not tracking: every session is read from Redis until it is back",
                        metadata: ["rsess.error": "\(error)"])
                case .keys, .all:
                    break
                }
            })
        let sessionCache = store.cache
        let settings = UserSettingsStore(client: client, keyPrefix: prefix)
        let bus = SessionEventBus(client: client, keyPrefix: prefix, subscriberName: "\(instance)-sub")
        let settingsCache = UserSettingsCache(
            settings: settings, bus: bus, configuration: configuration.settingsCache,
            observer: { notification in
                if case .event(let event) = notification { recorder?.recordEventLag(event) }
            })
        recorder?.follow(client: client, store: store, settingsCache: settingsCache, sessionCache: sessionCache)
        self.client = client
        self.store = store
        self.sessionCache = sessionCache
        self.cookie = SessionCookie(secure: configuration.secureCookies, maxAge: sessions.absoluteLifetime)
        self.settings = settings
        self.bus = bus
        self.settingsCache = settingsCache
        self.flows = SessionFlows(
            sessions: store, settings: settings, bus: bus, cache: settingsCache, instanceID: instance)
        self.metrics = recorder
        self.trustedProxies = configuration.trustedProxies
    }

    /// The client's address under ``Configuration/trustedProxies``: the peer, or, behind a trusted proxy, the
    /// right-most `X-Forwarded-For` hop that is not one. Key login limits and device labels on it.
    ///
    /// ```swift
    /// let address = kit.clientAddress(peer: channel.remoteAddress?.ipAddress, headers: request.headers)
    /// ```
    public func clientAddress(peer: String?, headers: HTTPFields) -> String? {
        trustedProxies.clientAddress(peer: peer, forwardedFor: headers[values: .xForwardedFor])
    }

    /// The services that run the parts, to put before the HTTP server in the service group (`Application`'s
    /// `services:` does): the pool, the store (its session cache), the settings cache, and the metrics.
    public var services: [any Service] {
        var services: [any Service] = [
            RedisClientService(client: client), SessionStoreService(store: store),
            SettingsCacheService(cache: settingsCache),
        ]
        if let metrics { services.append(metrics) }
        return services
    }

    /// The session middleware for a context type, on this kit's store and cookie, counting its 503s in the metrics.
    ///
    /// - Parameter unavailable: The response while the store cannot answer; a plain `503` when omitted.
    public func middleware<Context: RedisSessionRequestContext>(
        for context: Context.Type = Context.self, unavailable: (@Sendable (Request, Context) -> Response)? = nil
    ) -> RedisSessionMiddleware<Context> {
        var counting: (@Sendable () -> Void)?
        if let metrics { counting = { metrics.countUnavailable() } }
        return RedisSessionMiddleware(store: store, cookie: cookie, unavailable: unavailable, onUnavailable: counting)
    }
}

extension HTTPField.Name {
    // swift-format-ignore: NeverForceUnwrap
    static let xForwardedFor = Self("X-Forwarded-For")!
}
#endif  // Hummingbird
