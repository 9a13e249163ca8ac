import Foundation
import RedisClient
import RedisSession
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
            cache: cache ? SessionCache(client: client, keyPrefix: prefix) : nil)
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
}
