import RedisClient

/// Renders and parses the session cookie.
///
/// The cookie is `HttpOnly` (no script can read it) and `SameSite=Lax` (not sent on cross-site POSTs), `Secure` when
/// configured (always, behind HTTPS), and its `Max-Age` matches the store's absolute lifetime.
///
/// Why the absolute lifetime and not the idle timeout: a middleware sets the cookie when the session's ID changes
/// (sign-in, sign-out), not on every response. A cookie that expired with the idle timeout would log an active
/// visitor out half an hour after signing in. The store enforces the idle timeout; a browser that sends the ID of a
/// session that went idle gets an anonymous page and its cookie cleared.
///
/// ```swift
/// let cookie = SessionCookie(secure: true, maxAge: store.configuration.absoluteLifetime)
/// response.headers[.setCookie] = cookie.header(for: session.id)
/// let id = cookie.sessionID(fromCookieHeader: request.headers[.cookie])
/// ```
public struct SessionCookie: Sendable, Hashable {
    /// The cookie name. Default `rsess`.
    public var name: String
    /// Whether to add `Secure`. Default `false`, so the demo works over plain HTTP on loopback; set it in production.
    public var secure: Bool
    /// The `Path` attribute. Default `/`.
    public var path: String
    /// The `Domain` attribute, or `nil` for a host-only cookie (the safer default).
    public var domain: String?
    /// The `Max-Age`; match the store's absolute lifetime (``SessionStoreConfiguration/absoluteLifetime``).
    public var maxAge: Duration

    /// Creates a cookie policy.
    public init(
        name: String = "rsess", secure: Bool = false, path: String = "/", domain: String? = nil,
        maxAge: Duration = .seconds(12 * 3600)
    ) {
        precondition(!name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
        self.name = name
        self.secure = secure
        self.path = path
        self.domain = domain
        self.maxAge = maxAge
    }

    /// The `Set-Cookie` value that stores `id` in the browser.
    public func header(for id: SessionID) -> String {
        render(value: id.text, maxAge: max(1, maxAge.wholeMilliseconds / 1000))
    }

    /// The `Set-Cookie` value that deletes the cookie (logout).
    public func expiredHeader() -> String { render(value: "", maxAge: 0) }

    private func render(value: String, maxAge seconds: Int64) -> String {
        var parts = ["\(name)=\(value)", "Path=\(path)", "Max-Age=\(seconds)", "HttpOnly", "SameSite=Lax"]
        if let domain { parts.append("Domain=\(domain)") }
        if secure { parts.append("Secure") }
        return parts.joined(separator: "; ")
    }

    /// The session ID in a request's `Cookie` header, if the cookie is present and well-formed.
    ///
    /// - Parameter header: The `Cookie` header (`a=1; rsess=...`), or `nil`.
    /// - Returns: `nil` when the cookie is absent or not exactly a ``SessionID``; no store call is needed to decide.
    public func sessionID(fromCookieHeader header: String?) -> SessionID? {
        Self.sessionID(named: name, fromCookieHeader: header)
    }

    /// What a request's `Cookie` header holds under this cookie's name.
    public enum Reading: Sendable, Hashable {
        /// No cookie of this name.
        case absent
        /// A cookie of this name whose value is not a ``SessionID``: the response should clear it.
        case malformed
        /// A well-formed session ID (which may name no live session).
        case sessionID(SessionID)
    }

    /// Reads this cookie from a request's `Cookie` header: one scan of its bytes, no store call.
    public func read(fromCookieHeader header: String?) -> Reading {
        Self.read(named: name, fromCookieHeader: header)
    }

    /// The ``SessionID``-shaped value of the cookie `name` in a request's `Cookie` header: for any cookie that holds
    /// a token of that shape (the session's, or a CSRF cookie's).
    ///
    /// - Returns: `nil` when the cookie is absent or its value is not exactly a ``SessionID``.
    public static func sessionID(named name: String, fromCookieHeader header: String?) -> SessionID? {
        guard case .sessionID(let id) = read(named: name, fromCookieHeader: header) else { return nil }
        return id
    }

    private static func read(named name: String, fromCookieHeader header: String?) -> Reading {
        // Runs on every request: scan the bytes once, no splitting, no intermediate strings.
        guard var header, !header.isEmpty else { return .absent }
        return header.withUTF8 { bytes -> Reading in
            let name = Array(name.utf8)
            var index = 0
            while index < bytes.count {
                // Skip separators and whitespace before a cookie pair.
                while index < bytes.count,
                    bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t")
                        || bytes[index] == UInt8(ascii: ";")
                {
                    index += 1
                }
                let start = index
                while index < bytes.count, bytes[index] != UInt8(ascii: ";") { index += 1 }
                var pair = bytes[start..<index]
                guard pair.count > name.count, pair.starts(with: name), pair[start + name.count] == UInt8(ascii: "=")
                else {
                    continue
                }
                pair = pair[(start + name.count + 1)...]
                while let last = pair.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
                    pair = pair.dropLast()
                }
                if pair.count >= 2, pair.first == UInt8(ascii: "\""), pair.last == UInt8(ascii: "\"") {
                    pair = pair.dropFirst().dropLast()
                }
                return SessionID(utf8: UnsafeBufferPointer(rebasing: pair)).map { .sessionID($0) } ?? .malformed
            }
            return .absent
        }
    }
}
