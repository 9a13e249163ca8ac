// swift-tools-version:6.1
import PackageDescription

// One set of settings for every target: Swift 6 language mode and the upcoming features the best Swift server
// packages already build with.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-redis-session",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .library(name: "RedisSession", targets: ["RedisSession"]),
        .library(name: "SettingsSync", targets: ["SettingsSync"]),
        .library(name: "RedisTesting", targets: ["RedisTesting"]),
        .executable(name: "session-bench", targets: ["session-bench"]),
        .executable(name: "session-listen", targets: ["session-listen"]),
        .executable(name: "session-fuzz", targets: ["session-fuzz"]),
        // The integrations. Their modules are empty unless the trait of the same name is on, so an app adds one line:
        // .package(url: "…/swift-redis-session.git", from: "…", traits: ["Hummingbird"])
        .library(name: "HummingbirdRedisSession", targets: ["HummingbirdRedisSession"]),
        .library(name: "VaporRedisSession", targets: ["VaporRedisSession"]),
        .executable(name: "vapor-bench-app", targets: ["vapor-bench-app"]),
    ],
    // Off by default: with its default traits the package resolves no Swift package at all. SwiftPM fetches a
    // dependency that only a trait uses when that trait is on, and not otherwise.
    traits: [
        .trait(name: "Hummingbird", description: "The Hummingbird 2 integration: middleware, request context, metrics"),
        .trait(name: "Vapor", description: "The Vapor 4 integration: middleware, a sessions driver, client address"),
        .default(enabledTraits: []),
    ],
    // Otherwise the component's only dependencies are system libraries: libhiredis (its reader parses RESP) and
    // OpenSSL (TLS on the connection's own socket, and AES-256-GCM for session values at rest).
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .target(name: "RedisClient", dependencies: ["CHiredis", "COpenSSL"], swiftSettings: swiftSettings),
        // Sessions only: IDs, the cookie, the store protocol, the Redis and memory stores, the session cache.
        .target(name: "RedisSession", dependencies: ["RedisClient", "COpenSSL"], swiftSettings: swiftSettings),
        // This product's feature on top of sessions: settings records, their events and bus, the settings cache and
        // the login/settings/logout flows.
        .target(name: "SettingsSync", dependencies: ["RedisClient", "RedisSession"], swiftSettings: swiftSettings),
        .target(name: "RedisTesting", dependencies: ["RedisClient"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "session-bench",
            dependencies: ["RedisClient", "RedisSession", "SettingsSync", "RedisTesting"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "session-listen",
            dependencies: ["RedisClient", "RedisSession", "SettingsSync"],
            swiftSettings: swiftSettings
        ),
        // libFuzzer targets when built by scripts/fuzz (-sanitize=fuzzer,address -DFUZZING); otherwise a replayer of
        // the corpus in Fuzz/Corpus.
        .executableTarget(
            name: "session-fuzz",
            dependencies: ["RedisClient", "RedisSession", "SettingsSync"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HummingbirdRedisSession",
            dependencies: ["RedisClient", "RedisSession", "SettingsSync"] + [
                product("Hummingbird", from: "hummingbird", with: "Hummingbird"),
                product("ServiceLifecycle", from: "swift-service-lifecycle", with: "Hummingbird"),
                product("Metrics", from: "swift-metrics", with: "Hummingbird"),
                product("Logging", from: "swift-log", with: "Hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "VaporRedisSession",
            dependencies: ["RedisClient", "RedisSession"] + [product("Vapor", from: "vapor", with: "Vapor")],
            swiftSettings: swiftSettings
        ),
        // What scripts/vapor-bench measures: a Vapor hello-world, and a page that reads a signed-in session.
        .executableTarget(
            name: "vapor-bench-app",
            dependencies: ["VaporRedisSession", "RedisClient", "RedisSession"]
                + [product("Vapor", from: "vapor", with: "Vapor")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient"], swiftSettings: swiftSettings),
        .testTarget(name: "RedisSessionTests", dependencies: ["RedisSession"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SettingsSyncTests", dependencies: ["RedisSession", "SettingsSync"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RedisSessionIntegrationTests",
            dependencies: ["RedisClient", "RedisSession", "SettingsSync", "RedisTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisClientIntegrationTests",
            dependencies: ["RedisClient", "RedisTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HummingbirdRedisSessionTests",
            dependencies: ["HummingbirdRedisSession", "RedisClient", "RedisSession", "SettingsSync", "RedisTesting"]
                + [
                    product("Hummingbird", from: "hummingbird", with: "Hummingbird"),
                    product("HummingbirdTesting", from: "hummingbird", with: "Hummingbird"),
                    product("HummingbirdAuth", from: "hummingbird-auth", with: "Hummingbird"),
                    product("Metrics", from: "swift-metrics", with: "Hummingbird"),
                    product("Logging", from: "swift-log", with: "Hummingbird"),
                ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VaporRedisSessionTests",
            dependencies: ["VaporRedisSession", "RedisClient", "RedisSession", "RedisTesting"]
                + [
                    product("Vapor", from: "vapor", with: "Vapor"),
                    product("VaporTesting", from: "vapor", with: "Vapor"),
                ],
            swiftSettings: swiftSettings
        ),
    ]
)

/// A framework's product, used only when its trait is on (otherwise SwiftPM does not even fetch the framework).
func product(_ name: String, from package: String, with trait: String) -> Target.Dependency {
    .product(name: name, package: package, condition: .when(traits: [trait]))
}
