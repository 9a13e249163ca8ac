internal import CHiredis

extension RedisClient {
    /// The hiredis this package was built with, `"0.14.1"` or `"1.5.0"`: its reader parses every reply.
    ///
    /// Debian 12 ships 0.14; Ubuntu 24.04, Debian 13, Fedora, Alpine and Homebrew ship 1.x. Both are tested, and the
    /// client answers the same on both (`docs/ARCHITECTURE.md` lists where the libraries differ).
    public static var hiredisVersion: String {
        let version = Int(chiredis_version())
        return "\(version / 10000).\(version / 100 % 100).\(version % 100)"
    }
}
