/// The error of a session store: what went wrong with a session, or with the store behind it.
///
/// Storage-neutral: ``underlying`` is whatever the store's backend threw (a `RedisError` for ``RedisSessionStore``).
public struct SessionError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; a struct over a private enum so codes can be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case sessionNotFound, tooLarge, tooManyAttributes, corruptSession, invalidValue, storeUnavailable
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The session does not exist (any more): destroyed, expired or regenerated meanwhile. A save never
        /// brings it back.
        public static let sessionNotFound = Code(.sessionNotFound)
        /// The save would make the session larger than the configured maximum encoded size.
        public static let tooLarge = Code(.tooLarge)
        /// The save would give the session more attributes than the configured maximum.
        public static let tooManyAttributes = Code(.tooManyAttributes)
        /// The stored data is not a session this library wrote (missing metadata, wrong Redis type).
        public static let corruptSession = Code(.corruptSession)
        /// An attribute value could not be encoded to or decoded from JSON as asked.
        public static let invalidValue = Code(.invalidValue)
        /// The store could not be reached or did not answer in time. Not a logout: callers should answer 503.
        public static let storeUnavailable = Code(.storeUnavailable)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A description of the failure.
    public var message: String
    /// The backend's error behind the failure, if any (a `RedisError` behind ``Code/storeUnavailable``).
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }
}
