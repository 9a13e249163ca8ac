import Foundation
import Hummingbird

/// The reference for the web tier's benchmark: Hummingbird answering "Hello, world!", built the same way as
/// `webtier` (same package, same flags), so the ratio of the two isolates what the session work costs.
@main
struct HelloWorld {
    static func main() async throws {
        let port = ProcessInfo.processInfo.environment["PORT"].flatMap(Int.init) ?? 8081
        let router = Router()
        router.get("/") { _, _ in "Hello, world!" }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}
