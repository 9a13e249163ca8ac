/// The error of a session store: what went wrong with a session, or with the store behind it.
///
/// Storage-neutral: ``CodedError/underlying`` is whatever the store's backend threw (a `RedisError` for
/// ``RedisSessionStore``).
public typealias SessionError = CodedError<SessionErrorCode>

/// What kind of failure a ``SessionError`` is. A struct, so codes can be added without breaking a `switch`.
public struct SessionErrorCode: ErrorCode {
    public let description: String
    private init(_ description: String) { self.description = description }

    /// The session does not exist (any more): destroyed, expired or regenerated meanwhile. A save never brings it
    /// back.
    public static let sessionNotFound = Self("sessionNotFound")
    /// The save would make the session larger than the configured maximum encoded size.
    public static let tooLarge = Self("tooLarge")
    /// The save would give the session more attributes than the configured maximum.
    public static let tooManyAttributes = Self("tooManyAttributes")
    /// The stored data is not a session this library wrote (missing metadata, wrong Redis type).
    public static let corruptSession = Self("corruptSession")
    /// An attribute value could not be encoded to or decoded from JSON as asked.
    public static let invalidValue = Self("invalidValue")
    /// The store could not be reached or did not answer in time. Not a logout: callers should answer 503.
    public static let storeUnavailable = Self("storeUnavailable")

    public var meansStoreUnavailable: Bool { self == .storeUnavailable }
}
