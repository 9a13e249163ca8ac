#if Hummingbird
public import RedisClient
public import RedisSession
public import ServiceLifecycle
public import SettingsSync

// The component's long-running parts, as services of the application's service group. The root package takes no
// ServiceLifecycle dependency: its types follow the `run()` convention, and these adapters turn graceful shutdown
// into the cancellation that ends `run()`.
//
// Order them before the HTTP server in the group (``RedisSessionKit/services`` does): a service group shuts its
// services down last first, so the server drains its requests while Redis and the caches still serve them.

/// The Redis pool: connects at start, closes at shutdown.
public struct RedisClientService: Service {
    /// The pool.
    public let client: RedisClient

    /// Runs `client` as a service.
    public init(client: RedisClient) { self.client = client }

    public func run() async throws { await cancelWhenGracefulShutdown { await client.run() } }
}

/// The session store's background work until shutdown: its session cache following Redis' reports of changed
/// sessions (a store without a cache has nothing to do).
public struct SessionStoreService: Service {
    /// The store.
    public let store: RedisSessionStore

    /// Runs `store` as a service.
    public init(store: RedisSessionStore) { self.store = store }

    public func run() async throws { await cancelWhenGracefulShutdown { await store.run() } }
}

/// The settings cache, following the events channel until shutdown.
public struct SettingsCacheService: Service {
    /// The cache.
    public let cache: UserSettingsCache

    /// Runs `cache` as a service.
    public init(cache: UserSettingsCache) { self.cache = cache }

    public func run() async throws { await cancelWhenGracefulShutdown { await cache.run() } }
}
#endif  // Hummingbird
