public import RedisSession

/// The error of the settings store and the settings cache.
public typealias SettingsError = CodedError<SettingsErrorCode>

/// What kind of failure a ``SettingsError`` is.
public struct SettingsErrorCode: ErrorCode {
    public let description: String
    private init(_ description: String) { self.description = description }

    /// Redis could not be reached or did not answer in time. Not a missing record: callers should answer 503.
    public static let storeUnavailable = Self("storeUnavailable")

    public var meansStoreUnavailable: Bool { self == .storeUnavailable }
    /// The stored record is not one this library wrote (a wrong Redis type, an unexpected reply).
    public static let corruptRecord = Self("corruptRecord")
}
