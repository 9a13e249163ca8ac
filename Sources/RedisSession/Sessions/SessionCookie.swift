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
/// **Its name.** A secure cookie is named `__Host-rsess` by default: browsers accept a `__Host-` cookie only from a
/// secure origin, host-only and for `Path=/`, so a sibling subdomain (or a plain-HTTP response on the same host)
/// cannot plant one. Without `Secure` the name is `rsess`.
///
/// **One cookie, or none.** A `Cookie` header that carries the session cookie more than once is ambiguous: browsers
/// send a host-only and a domain cookie of one name side by side, in an order no server can rely on. Such a request
/// has no session (``Reading/ambiguous``): nothing is loaded and nothing is cleared, since clearing the host-only
/// cookie would leave the planted one alone.
///
/// ```swift
/// let cookie = SessionCookie(secure: true, maxAge: store.configuration.absoluteLifetime)
/// response.headers[.setCookie] = cookie.header(for: session.id)
/// let id = cookie.sessionID(fromCookieHeader: request.headers[.cookie])
/// ```
public struct SessionCookie: Sendable, Hashable {
    /// The cookie name: by default `__Host-rsess` when secure (`__Secure-rsess` with a `Domain` or a narrower
    /// `Path`, which `__Host-` forbids), `rsess` otherwise.
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
    ///
    /// - Parameters:
    ///   - name: The cookie name, or `nil` for ``defaultName(secure:path:domain:)``. A name that starts with
    ///     `__Host-` needs `secure`, `Path=/` and no domain, and one that starts with `__Secure-` needs `secure`:
    ///     browsers drop such cookies otherwise, so the combination is a programming error.
    ///   - secure: Whether to add `Secure`; set it behind HTTPS.
    ///   - path: The `Path` attribute.
    ///   - domain: The `Domain` attribute, or `nil` for a host-only cookie.
    ///   - maxAge: The `Max-Age`: the store's absolute lifetime.
    public init(
        name: String? = nil, secure: Bool = false, path: String = "/", domain: String? = nil,
        maxAge: Duration = .seconds(12 * 3600)
    ) {
        let name = name ?? Self.defaultName(secure: secure, path: path, domain: domain)
        precondition(!name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
        precondition(
            !name.hasPrefix("__Host-") || (secure && path == "/" && domain == nil),
            "a __Host- cookie must be Secure, with Path=/ and no Domain")
        precondition(!name.hasPrefix("__Secure-") || secure, "a __Secure- cookie must be Secure")
        self.name = name
        self.secure = secure
        self.path = path
        self.domain = domain
        self.maxAge = maxAge
    }

    /// The name a cookie gets when none is given: `__Host-rsess` when secure, host-only and for the whole site;
    /// `__Secure-rsess` when secure with a domain or a path; `rsess` otherwise.
    public static func defaultName(secure: Bool, path: String = "/", domain: String? = nil) -> String {
        guard secure else { return "rsess" }
        return path == "/" && domain == nil ? "__Host-rsess" : "__Secure-rsess"
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
        /// The cookie appears more than once (a host-only and a planted domain cookie, say): no session, and nothing
        /// to clear.
        case ambiguous
    }

    /// Reads this cookie from a request's `Cookie` header: one scan of its bytes, no store call.
    public func read(fromCookieHeader header: String?) -> Reading {
        Self.read(named: name, fromCookieHeader: header)
    }

    /// The ``SessionID``-shaped value of the cookie `name` in a request's `Cookie` header: for any cookie that holds
    /// a token of that shape (the session's, or a CSRF cookie's).
    ///
    /// - Returns: `nil` when the cookie is absent, appears more than once, or its value is not exactly a
    ///   ``SessionID``.
    public static func sessionID(named name: String, fromCookieHeader header: String?) -> SessionID? {
        guard case .sessionID(let id) = read(named: name, fromCookieHeader: header) else { return nil }
        return id
    }

    private static func read(named name: String, fromCookieHeader header: String?) -> Reading {
        // Runs on every request: scan the bytes once, no splitting, no intermediate strings. The whole header is
        // scanned, since a second cookie of the name makes the first one ambiguous.
        guard var header, !header.isEmpty else { return .absent }
        var name = name
        return header.withUTF8 { bytes in name.withUTF8 { name in scan(bytes, for: name) } }
    }

    /// The reading of the cookie `name` in a `Cookie` header's bytes.
    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>, for name: UnsafeBufferPointer<UInt8>) -> Reading {
        var found: Reading = .absent
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
            guard found == .absent else { return .ambiguous }
            found = SessionID(utf8: UnsafeBufferPointer(rebasing: pair)).map { .sessionID($0) } ?? .malformed
        }
        return found
    }
}
