/// The error of the settings store and the settings cache.
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; a struct over a private enum so codes can be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case storeUnavailable, corruptRecord
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Redis could not be reached or did not answer in time. Not a missing record: callers should answer 503.
        public static let storeUnavailable = Code(.storeUnavailable)
        /// The stored record is not one this library wrote (a wrong Redis type, an unexpected reply).
        public static let corruptRecord = Code(.corruptRecord)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A description of the failure.
    public var message: String
    /// The error behind the failure, if any (a `RedisError` behind ``Code/storeUnavailable``).
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
