import Logging
import ServiceLifecycle

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
