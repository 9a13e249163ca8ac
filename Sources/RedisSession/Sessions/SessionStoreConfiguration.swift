/// How sessions are stored and when they expire.
public struct SessionStoreConfiguration: Sendable, Hashable {
    /// Prefix of every key the store writes (`<prefix>s:<id>`, `<prefix>u:<user>`). Default `rsess:`.
    public var keyPrefix: String
    /// A session not loaded for this long expires (sliding: every load extends it). Default 30 minutes.
    public var idleTimeout: Duration
    /// A session older than this is gone, whatever its activity. Default 12 hours.
    public var absoluteLifetime: Duration
    /// A load rewrites the session's expiry at most this often, so a hot session is not rewritten on every
    /// request. Zero touches on every load. Default 60 seconds.
    public var touchInterval: Duration
    /// Largest total of attribute names and JSON values, in bytes. Default 64 KiB.
    public var maximumEncodedSize: Int
    /// Most attributes one session may hold. Default 64.
    public var maximumAttributeCount: Int

    /// Creates a configuration; every argument has a default.
    ///
    /// - Parameters:
    ///   - keyPrefix: Prefix of every key.
    ///   - idleTimeout: Sliding idle timeout.
    ///   - absoluteLifetime: Hard upper bound on a session's life.
    ///   - touchInterval: Minimum interval between two expiry refreshes of one session.
    ///   - maximumEncodedSize: Byte limit on attributes.
    ///   - maximumAttributeCount: Count limit on attributes.
    public init(
        keyPrefix: String = "rsess:",
        idleTimeout: Duration = .seconds(30 * 60),
        absoluteLifetime: Duration = .seconds(12 * 3600),
        touchInterval: Duration = .seconds(60),
        maximumEncodedSize: Int = 64 * 1024,
        maximumAttributeCount: Int = 64
    ) {
        precondition(idleTimeout > .zero && absoluteLifetime > .zero, "timeouts must be positive")
        precondition(touchInterval >= .zero && touchInterval < idleTimeout, "touchInterval must be below idleTimeout")
        precondition(maximumEncodedSize > 0 && maximumAttributeCount > 0, "limits must be positive")
        self.keyPrefix = keyPrefix
        self.idleTimeout = idleTimeout
        self.absoluteLifetime = absoluteLifetime
        self.touchInterval = touchInterval
        self.maximumEncodedSize = maximumEncodedSize
        self.maximumAttributeCount = maximumAttributeCount
    }
}

extension SessionStoreConfiguration {
    /// Throws ``SessionError/Code/tooManyAttributes`` or ``SessionError/Code/tooLarge`` when a session of this
    /// shape would break a limit; both stores call it before writing anything.
    func checkLimits(count: Int, bytes: Int) throws(SessionError) {
        if count > maximumAttributeCount {
            throw SessionError(
                .tooManyAttributes, "the session would hold \(count) attributes; the limit is \(maximumAttributeCount)")
        }
        if bytes > maximumEncodedSize {
            throw SessionError(.tooLarge, "the session would take \(bytes) bytes; the limit is \(maximumEncodedSize)")
        }
    }
}

extension Duration {
    /// Whole milliseconds (at least 1 for a positive duration).
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let value = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return self > .zero ? max(1, value) : value
    }
}
