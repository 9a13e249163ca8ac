import HummingbirdRedisSession
import Logging
import Prometheus
import RedisClient
import RedisSession
import SettingsSync

/// What the route handlers share: the component's parts, wired for one instance by the integration's kit.
struct AppState: Sendable {
    let configuration: WebTierConfiguration
    /// The store, caches, bus and flows, built from one key prefix.
    let kit: RedisSessionKit
    /// Where `/metrics` reads from.
    let registry: PrometheusCollectorRegistry
    let users: UserDirectory
    /// htmx, when installed.
    let assets: Assets
    /// What every page shares: the instance's name and the htmx script tag.
    let frame: PageFrame

    var instanceID: String { configuration.instanceID }
    var client: RedisClient { kit.client }
    var store: RedisSessionStore { kit.store }
    var sessionCache: SessionCache? { kit.sessionCache }
    var cache: UserSettingsCache { kit.settingsCache }
    var flows: SessionFlows { kit.flows }
    var cookie: SessionCookie { kit.cookie }

    init(configuration: WebTierConfiguration, logger: Logger) {
        self.configuration = configuration
        var redis = configuration.redis
        redis.clientName = configuration.instanceID
        let client = RedisClient(configuration: redis)
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        self.kit = RedisSessionKit(
            client: client,
            configuration: .init(
                instanceID: configuration.instanceID, keyPrefix: configuration.keyPrefix,
                sessions: configuration.sessions, sessionCache: configuration.sessionCache,
                settingsCache: configuration.cache, secureCookies: configuration.secureCookies,
                trustedProxies: configuration.trustedProxies),
            metrics: PrometheusMetricsFactory(registry: registry), logger: logger)
        self.users = UserDirectory(
            client: client, settings: kit.settings, keyPrefix: configuration.keyPrefix,
            bcryptCost: configuration.bcryptCost,
            failureLimit: configuration.loginFailureLimit, failureWindow: configuration.loginFailureWindow)
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
