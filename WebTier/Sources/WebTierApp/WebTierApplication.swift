import ServiceLifecycle
public import Hummingbird
import HummingbirdRedisSession
public import Logging

/// Builds one web-tier instance: routes, middleware and the component's services in one Hummingbird application,
/// with the admin listener (`/healthz` with reasons, `/stats`, `/metrics`) as one of its services when
/// ``WebTierConfiguration/adminPort`` is set.
///
/// ```swift
/// let app = buildApplication(configuration: configuration, logger: Logger(label: "webtier"))
/// try await app.runService()   // SIGTERM / SIGINT: graceful shutdown
/// ```
///
/// Graceful shutdown stops the HTTP servers first (in-flight requests finish), then the caches' connections, then
/// the Redis pool.
public func buildApplication(configuration: WebTierConfiguration, logger: Logger) -> some ApplicationProtocol {
    var (site, admin) = buildApplications(configuration: configuration, logger: logger)
    if configuration.adminPort != nil { site.addServices(admin) }
    return site
}

/// The site and the admin listener of one instance, sharing its state. The site's services do not include the
/// admin listener, so tests can drive both without binding its port.
func buildApplications(configuration: WebTierConfiguration, logger: Logger) -> (
    site: Application<RouterResponder<AppRequestContext>>, admin: Application<RouterResponder<BasicRequestContext>>
) {
    let state = AppState(configuration: configuration, logger: logger)
    let operations = OperationsRoutes(state: state)

    // HEAD is answered as GET without a body, on every page.
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    // Outermost, so every response gets them, refusals and errors included.
    router.add(middleware: ResponseHeadersMiddleware(instanceID: configuration.instanceID))
    // Hummingbird's request metrics (HTTPMetrics), by route template, so their labels stay few.
    router.add(middleware: HTTPMetrics.middleware())
    operations.registerPublic(on: router)
    state.assets.register(on: router)
    router.add(middleware: state.kit.middleware(for: AppRequestContext.self) { _, _ in Pages.unavailable() })
    AccountRoutes(state: state).register(on: router)
    SettingsRoutes(state: state).register(on: router)

    var services = state.kit.services
    if configuration.seedDemoUsers { services.append(DemoUserSeeder(users: state.users, logger: logger)) }
    if let read = configuration.reloadSessionKeys {
        services.append(SessionKeysReloader(store: state.store, read: read, logger: logger))
    }
    let deadlines = RequestDeadlineHandler.Deadlines(
        head: configuration.requestHeadTimeout, body: configuration.requestBodyTimeout)
    let site = Application(
        router: router,
        server: .http1(
            configuration: .init(additionalChannelHandlers: [
                RequestDeadlineHandler(deadlines: deadlines), HTTPStrictnessHandler(),
            ])),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: services,
        logger: logger)

    let adminRouter = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
    adminRouter.add(middleware: ResponseHeadersMiddleware(instanceID: configuration.instanceID))
    operations.registerAdmin(on: adminRouter)
    var adminLogger = logger
    adminLogger[metadataKey: "rsess.listener"] = "admin"
    let admin = Application(
        router: adminRouter,
        configuration: .init(
            address: .hostname(configuration.adminHost, port: configuration.adminPort ?? 0), serverName: nil),
        logger: adminLogger)
    return (site, admin)
}
