// swift-tools-version:6.0
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
    ],
    // The component's only dependencies are system libraries: libhiredis (its reader parses RESP) and OpenSSL
    // (TLS on the connection's own socket, and AES-256-GCM for session values at rest). No Swift package dependencies.
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
    ]
)
