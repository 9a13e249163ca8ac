#if Vapor
import Foundation
import RedisClient
import RedisSession
import RedisTesting
import Vapor
import VaporTesting

/// What both apps' tests share: a store on a real redis-server with short timeouts, and the session cookie.
enum Support {
    /// A store under `prefix` with its own client (300 ms to connect, 1 s per command), with a session cache when
    /// asked.
    static func store(url: String, prefix: String, cache: Bool = false) throws -> RedisSessionStore {
        var redis = try RedisConfiguration(url: url)
        redis.connectTimeout = .milliseconds(300)
        redis.commandTimeout = .seconds(1)
        let client = RedisClient(configuration: redis)
        return RedisSessionStore(
            client: client, configuration: SessionStoreConfiguration(keyPrefix: prefix),
            cache: cache ? SessionCache.Configuration() : nil)
    }

    /// A key prefix no other test uses.
    static func uniquePrefix() -> String { "vp\(UUID().uuidString.prefix(8)):" }

    /// The session ID a response set, if any.
    static func cookie(_ response: TestingHTTPResponse) -> String? {
        response.headers.setCookie?["rsess"]?.string
    }

    /// The whole `Set-Cookie` line for the session cookie, attributes included.
    static func setCookie(_ response: TestingHTTPResponse) -> String? {
        response.headers[.setCookie].first { $0.hasPrefix("rsess=") }
    }

    /// Request headers that carry `cookie` as the session cookie.
    static func headers(_ cookie: String) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.cookie = ["rsess": .init(string: cookie)]
        return headers
    }

    /// Two instances of an app on one Redis, as two web instances behind a load balancer would be, each with its own
    /// store (and client) under one fresh prefix; `body` gets the apps and their stores, and the clients are closed
    /// afterwards.
    static func withTwoInstances(
        configure: @escaping (Application, RedisSessionStore) -> Void,
        _ body: (Application, Application, RedisSessionStore, RedisSessionStore) async throws -> Void
    ) async throws {
        let url = try await RedisServer.sharedURL()
        let prefix = uniquePrefix()
        let one = try store(url: url, prefix: prefix)
        let two = try store(url: url, prefix: prefix)
        do {
            try await withApp(configure: { configure($0, one) }) { first in
                try await withApp(configure: { configure($0, two) }) { second in
                    try await body(first, second, one, two)
                }
            }
        } catch {
            await one.client.close()
            await two.client.close()
            throw error
        }
        await one.client.close()
        await two.client.close()
    }
}
#endif  // Vapor
