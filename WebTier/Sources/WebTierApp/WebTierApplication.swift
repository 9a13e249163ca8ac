import ServiceLifecycle
public import Hummingbird
import HummingbirdRedisSession
public import Logging

/// Builds one web-tier instance: routes, middleware and the component's services in one Hummingbird application.
///
/// ```swift
/// let app = buildApplication(configuration: configuration, logger: Logger(label: "webtier"))
/// try await app.runService()   // SIGTERM / SIGINT: graceful shutdown
/// ```
///
/// Graceful shutdown stops the HTTP server first (in-flight requests finish), then the caches' connections, then
/// the Redis pool.
public func buildApplication(configuration: WebTierConfiguration, logger: Logger) -> some ApplicationProtocol {
    let state = AppState(configuration: configuration, logger: logger)
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: InstanceHeaderMiddleware(instanceID: configuration.instanceID))
    OperationsRoutes(state: state).register(on: router)
    state.assets.register(on: router)
    router.add(middleware: state.kit.middleware(for: AppRequestContext.self) { _, _ in Pages.unavailable() })
    AccountRoutes(state: state).register(on: router)
    SettingsRoutes(state: state).register(on: router)

    var services = state.kit.services
    if configuration.seedDemoUsers { services.append(DemoUserSeeder(users: state.users, logger: logger)) }
    let deadlines = RequestDeadlineHandler.Deadlines(
        head: configuration.requestHeadTimeout, body: configuration.requestBodyTimeout)
    return Application(
        router: router,
        server: .http1(configuration: .init(additionalChannelHandlers: [RequestDeadlineHandler(deadlines: deadlines)])),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: services,
        logger: logger)
}
