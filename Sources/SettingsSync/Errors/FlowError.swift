public import RedisSession

/// The error of ``SessionFlows``: what the user did wrong, or which store failed (`underlying` is then that
/// store's `SessionError` or ``SettingsError``).
public typealias FlowError = CodedError<FlowErrorCode>

/// What kind of failure a ``FlowError`` is.
public struct FlowErrorCode: ErrorCode {
    public let description: String
    private init(_ description: String) { self.description = description }

    /// A timezone identifier that is not in the IANA list; nothing was written or published.
    public static let unknownTimezone = Self("unknownTimezone")
    /// A flow that needs a signed-in user got an anonymous session.
    public static let notSignedIn = Self("notSignedIn")
    /// The session ended meanwhile (destroyed, expired or regenerated elsewhere): sign in again.
    public static let sessionNotFound = Self("sessionNotFound")
    /// A store could not be reached or did not answer in time. Not a logout: callers should answer 503.
    public static let storeUnavailable = Self("storeUnavailable")

    public var meansStoreUnavailable: Bool { self == .storeUnavailable }
    /// A store refused the write or found data it did not write: a `SessionError` such as `tooLarge`, or a
    /// ``SettingsError``.
    public static let rejected = Self("rejected")
}

extension CodedError where Code == FlowErrorCode {
    /// A session store's failure, as a flow reports it.
    public init(_ error: SessionError) {
        let code: FlowErrorCode =
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
}
