// swift-tools-version:6.1
import PackageDescription

// A package that depends on the component without a trait: it must resolve the component and nothing else.
// `scripts/consumer-check` resolves it from a `file://` clone (SWIFT_REDIS_SESSION_URL) and checks just that.
let component = Context.environment["SWIFT_REDIS_SESSION_URL"] ?? "https://github.com/your-org/swift-redis-session.git"

let package = Package(
    name: "NoTraits",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: component, branch: "main")],
    targets: [
        .executableTarget(
            name: "Check",
            dependencies: [.product(name: "RedisSession", package: "swift-redis-session")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
