public import RedisSession

/// The error of ``SessionFlows``: what the user did wrong, or which store failed.
public struct FlowError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; a struct over a private enum so codes can be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case unknownTimezone, notSignedIn, sessionNotFound, storeUnavailable, rejected
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A timezone identifier that is not in the IANA list; nothing was written or published.
        public static let unknownTimezone = Code(.unknownTimezone)
        /// A flow that needs a signed-in user got an anonymous session.
        public static let notSignedIn = Code(.notSignedIn)
        /// The session ended meanwhile (destroyed, expired or regenerated elsewhere): sign in again.
        public static let sessionNotFound = Code(.sessionNotFound)
        /// A store could not be reached or did not answer in time. Not a logout: callers should answer 503.
        public static let storeUnavailable = Code(.storeUnavailable)
        /// A store refused the write or found data it did not write (``underlying`` says which: a ``SessionError``
        /// such as `tooLarge`, or a ``SettingsError``).
        public static let rejected = Code(.rejected)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A description of the failure.
    public var message: String
    /// The store's error behind the failure: a ``SessionError`` or a ``SettingsError``.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// A session store's failure, as a flow reports it.
    public init(_ error: SessionError) {
        let code: Code =
            switch error.code {
            case .sessionNotFound: .sessionNotFound
            case .storeUnavailable: .storeUnavailable
            default: .rejected
            }
        self.init(code, error.message, underlying: error)
    }

    /// A settings store's failure, as a flow reports it.
    public init(_ error: SettingsError) {
        self.init(error.code == .storeUnavailable ? .storeUnavailable : .rejected, error.message, underlying: error)
    }

    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }
}
