import Logging
import RedisClient
import RedisSession
import SettingsSync

/// What the route handlers share: the component's parts, wired for one instance.
struct AppState: Sendable {
    let configuration: WebTierConfiguration
    let client: RedisClient
    let store: RedisSessionStore
    let sessionCache: SessionCache?
    let cache: UserSettingsCache
    let flows: SessionFlows
    let users: UserDirectory
    let cookie: SessionCookie
    /// htmx, when installed.
    let assets: Assets
    /// What every page shares: the instance's name and the htmx script tag.
    let frame: PageFrame

    var instanceID: String { configuration.instanceID }

    init(configuration: WebTierConfiguration, logger: Logger) {
        self.configuration = configuration
        var redis = configuration.redis
        redis.clientName = configuration.instanceID
        let client = RedisClient(configuration: redis)
        let sessionCache = configuration.sessionCache.map {
            SessionCache(
                client: client, keyPrefix: configuration.sessions.keyPrefix, configuration: $0,
                subscriberName: "\(configuration.instanceID)-cache",
                observer: { event in
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
        }
        let store = RedisSessionStore(client: client, configuration: configuration.sessions, cache: sessionCache)
        let settings = UserSettingsStore(client: client, keyPrefix: configuration.keyPrefix)
        let bus = SessionEventBus(
            client: client, keyPrefix: configuration.keyPrefix, subscriberName: "\(configuration.instanceID)-sub")
        let cache = UserSettingsCache(settings: settings, bus: bus, configuration: configuration.cache)
        self.client = client
        self.store = store
        self.sessionCache = sessionCache
        self.cache = cache
        self.flows = SessionFlows(
            sessions: store, settings: settings, bus: bus, cache: cache, instanceID: configuration.instanceID)
        self.users = UserDirectory(
            client: client, settings: settings, keyPrefix: configuration.keyPrefix,
            bcryptCost: configuration.bcryptCost,
            failureLimit: configuration.loginFailureLimit, failureWindow: configuration.loginFailureWindow)
        self.cookie = SessionCookie(secure: configuration.secureCookies, maxAge: configuration.sessions.idleTimeout)
        self.assets = Assets.load(directory: configuration.publicDirectory, logger: logger)
        self.frame = PageFrame(instanceID: configuration.instanceID, htmxPath: assets.htmxPath)
    }

    /// The anonymous login form's CSRF cookie name (`__Host-` with secure cookies).
    var csrfCookieName: String { CSRFToken.cookieName(secure: configuration.secureCookies) }

    /// The `Set-Cookie` value of the anonymous login form's CSRF cookie.
    func csrfCookieHeader(_ token: String) -> String {
        "\(csrfCookieName)=\(token); Path=/; HttpOnly; SameSite=Lax" + (configuration.secureCookies ? "; Secure" : "")
    }
}
