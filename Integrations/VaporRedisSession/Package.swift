// swift-tools-version:6.0
import PackageDescription

// The Vapor integration is its own package, so that Vapor never leaks into the component: the root package keeps no
// Swift package dependencies. (Its folder is named after its module: SwiftPM names a path package by its folder, and
// a package called `vapor` would collide with Vapor itself.)
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-redis-session-vapor",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VaporRedisSession", targets: ["VaporRedisSession"]),
        .executable(name: "vapor-bench-app", targets: ["vapor-bench-app"]),
    ],
    dependencies: [
        .package(name: "swift-redis-session", path: "../.."),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
    ],
    targets: [
        .target(
            name: "VaporRedisSession",
            dependencies: [
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "Vapor", package: "vapor"),
            ],
            swiftSettings: swiftSettings
        ),
        // What scripts/bench measures: a Vapor hello-world, and a page that reads a signed-in session.
        .executableTarget(
            name: "vapor-bench-app",
            dependencies: [
                "VaporRedisSession",
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "Vapor", package: "vapor"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VaporRedisSessionTests",
            dependencies: [
                "VaporRedisSession",
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "RedisTesting", package: "swift-redis-session"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "VaporTesting", package: "vapor"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
