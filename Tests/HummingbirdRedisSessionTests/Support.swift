#if Hummingbird
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdRedisSession
import HummingbirdTesting
import NIOCore
import RedisSession

/// The smallest context the integration needs: Hummingbird's core storage and the visitor's session.
struct TestContext: RedisSessionRequestContext {
    var coreContext: CoreRequestContextStorage
    let session = RequestSession()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

func uniquePrefix() -> String { "hb\(UUID().uuidString.prefix(8)):" }

extension TestResponse {
    /// The body as text.
    var text: String { String(buffer: body) }

    /// The `name=value` of a `Set-Cookie` for `name`, `""` when it clears it, `nil` when there is none.
    func setCookie(_ name: String) -> String? {
        for field in headers[values: .setCookie] where field.hasPrefix(name + "=") {
            let value = field.dropFirst(name.count + 1).prefix { $0 != ";" }
            return String(value)
        }
        return nil
    }
}

/// A cookie jar of one cookie, enough for these tests.
struct Jar {
    var cookies: [String: String] = [:]

    var headers: HTTPFields {
        var fields: HTTPFields = [:]
        if !cookies.isEmpty {
            fields[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")
        }
        return fields
    }

    /// Keeps what a response set, and forgets what it cleared.
    mutating func take(_ response: TestResponse, _ name: String) {
        guard let value = response.setCookie(name) else { return }
        cookies[name] = value.isEmpty ? nil : value
    }
}
#endif  // Hummingbird
