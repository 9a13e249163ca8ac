import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RedisClient
import RedisSession
import RedisTesting
import Testing

@testable import WebTierApp

/// A web-tier instance configured for tests: a private key prefix, cheap bcrypt, demo users seeded.
func makeApp(
    instanceID: String = "test-1", url: String? = nil, prefix: String, failureLimit: Int = 5,
    publicDirectory: String? = nil, publicHost: String? = nil, secureCookies: Bool = false,
    trustedProxies: TrustedProxies = .none, requestHeadTimeout: Duration = .seconds(10)
) async throws -> some ApplicationProtocol {
    try await makeInstance(
        instanceID: instanceID, url: url, prefix: prefix, failureLimit: failureLimit,
        publicDirectory: publicDirectory, publicHost: publicHost, secureCookies: secureCookies,
        trustedProxies: trustedProxies, requestHeadTimeout: requestHeadTimeout
    ).site
}

/// A web-tier instance and its admin listener (`/healthz` with reasons, `/stats`, `/metrics`), sharing one state;
/// test the admin listener with `.router` inside the site's test.
func makeInstance(
    instanceID: String = "test-1", url: String? = nil, prefix: String, failureLimit: Int = 5,
    publicDirectory: String? = nil, publicHost: String? = nil, secureCookies: Bool = false,
    trustedProxies: TrustedProxies = .none, requestHeadTimeout: Duration = .seconds(10)
) async throws -> (site: some ApplicationProtocol, admin: some ApplicationProtocol) {
    let target: String
    if let url { target = url } else { target = try await RedisServer.sharedURL() }
    var redis = try RedisConfiguration(url: target)
    redis.connectTimeout = .milliseconds(300)
    redis.commandTimeout = .seconds(1)
    let configuration = WebTierConfiguration(
        instanceID: instanceID, port: 0, trustedProxies: trustedProxies, redis: redis, keyPrefix: prefix,
        secureCookies: secureCookies, bcryptCost: 4, loginFailureLimit: failureLimit, seedDemoUsers: true,
        publicDirectory: publicDirectory, publicHost: publicHost, requestHeadTimeout: requestHeadTimeout)
    var logger = Logger(label: "webtier-test")
    logger.logLevel = .warning
    return buildApplications(configuration: configuration, logger: logger)
}

func uniquePrefix() -> String { "wt\(UUID().uuidString.prefix(8)):" }

// Header name literals: the initialiser fails only on invalid names.
extension HTTPField.Name {
    // swift-format-ignore: NeverForceUnwrap
    static let hxRequestTest = Self("HX-Request")!
    // swift-format-ignore: NeverForceUnwrap
    static let hxRefreshTest = Self("HX-Refresh")!
    // swift-format-ignore: NeverForceUnwrap
    static let xInstanceTest = Self("X-Instance")!
    // swift-format-ignore: NeverForceUnwrap
    static let csrfTest = Self("X-CSRF-Token")!
    // swift-format-ignore: NeverForceUnwrap
    static let xForwardedFor = Self("X-Forwarded-For")!
}

/// A browser, as far as these tests need one: a cookie jar and form posts.
struct Browser {
    var cookies: [String: String] = [:]
    /// The `User-Agent` it sends, if any.
    var userAgent: String? = nil

    /// The headers of every request: the cookies and the user agent.
    var cookieHeader: HTTPFields {
        var fields: HTTPFields = [:]
        if !cookies.isEmpty {
            fields[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")
        }
        if let userAgent { fields[.userAgent] = userAgent }
        return fields
    }

    mutating func remember(_ response: TestResponse) {
        for value in response.headers[values: .setCookie] {
            guard let pair = value.split(separator: ";").first, let equals = pair.firstIndex(of: "=") else { continue }
            let name = String(pair[..<equals])
            let content = String(pair[pair.index(after: equals)...])
            if value.contains("Max-Age=0") || content.isEmpty { cookies[name] = nil } else { cookies[name] = content }
        }
    }

    mutating func get(_ client: some TestClientProtocol, _ uri: String, headers: HTTPFields = [:]) async throws
        -> TestResponse
    {
        var all = cookieHeader
        all.append(contentsOf: headers)
        let response = try await client.execute(uri: uri, method: .get, headers: all)
        remember(response)
        return response
    }

    mutating func post(
        _ client: some TestClientProtocol, _ uri: String, form: [String: String], headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var all = cookieHeader
        all[.contentType] = "application/x-www-form-urlencoded"
        all.append(contentsOf: headers)
        let body = form.map {
            "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        }
        .joined(separator: "&")
        let response = try await client.execute(uri: uri, method: .post, headers: all, body: ByteBuffer(string: body))
        remember(response)
        return response
    }

    /// The CSRF token embedded in a page's forms.
    static func csrf(in response: TestResponse) -> String? {
        let page = String(buffer: response.body)
        guard let range = page.range(of: "name=\"csrf\" value=\"") else { return nil }
        let rest = page[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    /// Signs in through the login form; returns the final response of the login POST.
    @discardableResult
    mutating func signIn(
        _ client: some TestClientProtocol, user: String = "alice", password: String = "wonderland",
        headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        let form = try await get(client, "/", headers: headers)
        let token = Self.csrf(in: form) ?? ""
        return try await post(
            client, "/login", form: ["username": user, "password": password, "csrf": token], headers: headers)
    }
}

/// A JSON response body (the admin listener's `/healthz` and `/stats`) as a dictionary; empty when it is not a JSON object.
func jsonObject(_ response: TestResponse) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any] ?? [:]
}

/// The IANA identifier the landing page shows (`data-timezone`), or nil for the login page.
func shownTimezone(_ response: TestResponse) -> String? {
    let page = String(buffer: response.body)
    guard let range = page.range(of: "data-timezone=\"") else { return nil }
    let rest = page[range.upperBound...]
    return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
}

/// Waits until the instance is healthy (Redis answers, subscribed) and its demo users are seeded.
func waitUntilReady(_ client: some TestClientProtocol, url: String? = nil, prefix: String) async throws {
    let target: String
    if let url { target = url } else { target = try await RedisServer.sharedURL() }
    let redis = RedisClient(configuration: try RedisConfiguration(url: target))
    let ready = try await isReady(client, redis: redis, prefix: prefix)
    await redis.close()
    if !ready { Issue.record("the instance did not become ready") }
}

private func isReady(_ client: some TestClientProtocol, redis: RedisClient, prefix: String) async throws -> Bool {
    for _ in 0..<500 {
        let health = try await client.execute(uri: "/healthz", method: .get)
        let seeded =
            try await redis.send(
                "EXISTS", prefix + "account:alice", prefix + "account:bob",
                SessionKeys(prefix: prefix).settings("alice"),
                SessionKeys(prefix: prefix).settings("bob")
            ).int == 4
        if health.status == .ok && seeded { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return false
}
