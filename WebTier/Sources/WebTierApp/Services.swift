import Logging
import RedisClient
import RedisSession
import SettingsSync
import ServiceLifecycle

// The component's long-running parts join the app's service group. The root package takes no ServiceLifecycle
// dependency: its types follow the `run()` convention, and these adapters turn graceful shutdown into the
// cancellation that ends `run()`.

/// The Redis pool: connects at start, closes at shutdown (after the HTTP server has drained).
struct RedisClientService: Service {
    let client: RedisClient
    func run() async throws { await cancelWhenGracefulShutdown { await client.run() } }
}

/// The settings cache following the events channel.
struct SettingsCacheService: Service {
    let cache: UserSettingsCache
    func run() async throws { await cancelWhenGracefulShutdown { await cache.run() } }
}

/// The session cache following Redis' reports of changed sessions.
struct SessionCacheService: Service {
    let cache: SessionCache
    func run() async throws { await cancelWhenGracefulShutdown { await cache.run() } }
}

/// Creates the demo users, retrying while Redis is not reachable yet, then idles until shutdown.
struct DemoUserSeeder: Service {
    let users: UserDirectory
    let logger: Logger

    func run() async throws {
        var attempt = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await users.seedDemoUsers()
                logger.info("demo users ready", metadata: ["rsess.users": "alice, bob"])
                break
            } catch {
                attempt += 1
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning("cannot seed demo users yet", metadata: ["rsess.error": "\(error)"])
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(500)) }
            }
        }
        try? await gracefulShutdown()
    }
}
