#if Vapor
public import RedisSession
public import Vapor

extension Request {
    /// The request's `User-Agent`, read for a device list: `req.userAgent?.description` is "Chrome 156 on Linux",
    /// and `.string` the header as sent. `nil` when the header is absent or empty.
    ///
    /// Store the header as a session label at sign-in and read it back with ``RedisSession/UserAgent`` when the list
    /// is shown, so that a better reading later applies to every session already signed in.
    public var userAgent: UserAgent? {
        guard let header = headers.first(name: .userAgent), !header.isEmpty else { return nil }
        return UserAgent(header)
    }
}
#endif  // Vapor
