import RedisSession

/// CSRF tokens: one per session (stored in the session, checked on every POST of a signed-in visitor), and a
/// double-submit cookie for the anonymous login form (so that anonymous page views write nothing to Redis).
enum CSRFToken {
    /// The session attribute holding the token.
    static let attribute = "csrf"
    /// The cookie of the anonymous login form.
    static let cookieName = "rsess_csrf"

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

    /// The value of a cookie in a `Cookie` header.
    static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop { $0 == " " }
            guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == name else { continue }
            return String(trimmed[trimmed.index(after: equals)...])
        }
        return nil
    }
}
