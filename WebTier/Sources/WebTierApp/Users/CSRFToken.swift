import Foundation
import RedisSession

/// CSRF tokens: one per session (stored in the session, checked on every POST of a signed-in visitor), and a
/// double-submit cookie for the anonymous login form (so that anonymous page views write nothing to Redis).
enum CSRFToken {
    /// The session attribute holding the token.
    static let attribute = "csrf"
    /// The cookie of the anonymous login form. With secure cookies it is a `__Host-` cookie
    /// (``cookieName(secure:)``), which a sibling subdomain cannot set: the double submit then proves the form came
    /// from a page this host served.
    static let cookieName = "rsess_csrf"

    /// The login form's cookie name: `__Host-rsess_csrf` when cookies are `Secure`, else `rsess_csrf`.
    static func cookieName(secure: Bool) -> String { secure ? "__Host-" + cookieName : cookieName }

    /// Whether an anonymous token is one this site could have issued: the shape of ``make()``, so a token the
    /// visitor made up (`x` in the cookie and `x` in the form) is refused.
    static func isWellFormed(_ token: String?) -> Bool { token.flatMap { SessionID($0) } != nil }

    /// Whether a browser's `Origin` (or, without one, `Referer`) names this site. Browsers send `Origin` on every
    /// cross-site POST, so a request with neither comes from a non-browser client, to which login CSRF does not apply.
    ///
    /// - Parameters:
    ///   - origin: The `Origin` header.
    ///   - referer: The `Referer` header.
    ///   - host: The site's host name: the configured public host, else the request's `Host` (its port is not
    ///     compared: a proxy may forward the host without it).
    static func isSameSite(origin: String?, referer: String?, host: String?) -> Bool {
        guard let source = origin ?? referer else { return true }
        guard let host, let sourceHost = hostName(ofURL: source) else { return false }
        return sourceHost == hostName(ofAuthority: host)
    }

    /// `https://Example.com:8443/path` → `example.com`; `nil` for `null` or anything without a scheme and host.
    static func hostName(ofURL url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        return hostName(ofAuthority: String(authority))
    }

    /// `Example.com:8443` → `example.com`, `[::1]:8080` → `[::1]`.
    static func hostName(ofAuthority authority: String) -> String {
        let lowered = authority.lowercased()
        if lowered.hasPrefix("["), let close = lowered.firstIndex(of: "]") { return String(lowered[...close]) }
        return String(lowered.prefix { $0 != ":" })
    }

    /// A new token: 32 CSPRNG bytes, base64url (the same shape as a session ID).
    static func make() -> String { SessionID().text }

    /// Compares without an early exit, so timing does not reveal how much of a guess was right.
    static func matches(_ submitted: String?, _ expected: String?) -> Bool {
        guard let submitted, let expected, !expected.isEmpty else { return false }
        let a = Array(submitted.utf8)
        let b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
