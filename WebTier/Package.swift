// swift-tools-version:6.1
import PackageDescription

// The web tier is its own package, so that the demo's own dependencies (Prometheus, bcrypt, argument parsing) never
// reach the component, whose root package resolves no Swift package by default.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "WebTier",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "webtier", targets: ["webtier"]),
        .executable(name: "hello-world", targets: ["hello-world"]),
        .executable(name: "rig-check", targets: ["rig-check"]),
    ],
    dependencies: [
        // The component with its Hummingbird integration: the same trait an app outside this repository names.
        .package(name: "swift-redis-session", path: "..", traits: ["Hummingbird"]),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "WebTierApp",
            dependencies: [
                .product(name: "HummingbirdRedisSession", package: "swift-redis-session"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "SettingsSync", package: "swift-redis-session"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "webtier",
            dependencies: [
                "WebTierApp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "SettingsSync", package: "swift-redis-session"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hello-world",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "rig-check",
            dependencies: [
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "SettingsSync", package: "swift-redis-session"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebTierTests",
            dependencies: [
                .product(name: "HummingbirdRedisSession", package: "swift-redis-session"),
                "WebTierApp",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "SettingsSync", package: "swift-redis-session"),
                .product(name: "RedisTesting", package: "swift-redis-session"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
