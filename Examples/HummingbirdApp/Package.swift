// swift-tools-version:6.1
import PackageDescription

// An app outside the component's repository, as a team adds it: one dependency by URL, naming the Hummingbird
// trait. `scripts/consumer-check` builds it from a `file://` clone (SWIFT_REDIS_SESSION_URL) and drives it.
let component = Context.environment["SWIFT_REDIS_SESSION_URL"] ?? "https://github.com/your-org/swift-redis-session.git"

let package = Package(
    name: "HummingbirdApp",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: component, branch: "main", traits: ["Hummingbird"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "App",
            dependencies: [
                .product(name: "HummingbirdRedisSession", package: "swift-redis-session"),
                .product(name: "RedisSession", package: "swift-redis-session"),
                .product(name: "RedisClient", package: "swift-redis-session"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
