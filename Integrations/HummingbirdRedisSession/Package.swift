// swift-tools-version:6.0
import PackageDescription

// The Hummingbird integration is its own package, so that Hummingbird never leaks into the component: the root
// package keeps no Swift package dependencies.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-redis-session-hummingbird",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "HummingbirdRedisSession", targets: ["HummingbirdRedisSession"])
    ],
    dependencies: [
        .package(name: "swift-redis-session", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "HummingbirdRedisSession",
            dependencies: [
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "SettingsSync", package: "swift-redis-session"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HummingbirdRedisSessionTests",
            dependencies: [
                "HummingbirdRedisSession",
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "SettingsSync", package: "swift-redis-session"),
                .product(name: "RedisTesting", package: "swift-redis-session"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
