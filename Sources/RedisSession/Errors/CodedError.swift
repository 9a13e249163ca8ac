/// The codes of one layer's errors: a closed set of named values that callers switch on (``SessionErrorCode``, and
/// the settings layer's codes).
public protocol ErrorCode: Sendable, Hashable, CustomStringConvertible {
    /// Whether this code says that the store could not answer: a web tier answers `503`, never a logout.
    var meansStoreUnavailable: Bool { get }
}

extension ErrorCode {
    /// `false`: a layer with a `storeUnavailable` code says so itself.
    public var meansStoreUnavailable: Bool { false }
}

/// The errors of the session layer and the layers built on it: a code to switch on, a message for people, and the
/// error behind it. Each layer has its own codes, so an error says which layer failed:
/// ``SessionError`` is `CodedError<SessionErrorCode>`.
///
/// ```swift
/// do {
///     session = try await store.load(id: id)
/// } catch where error.code == .storeUnavailable {
///     return .serviceUnavailable  // not a logout: Redis is unreachable
/// }
/// ```
public struct CodedError<Code: ErrorCode>: Error, Sendable, CustomStringConvertible, StoreAvailabilityReporting {
    /// What kind of failure this is.
    public var code: Code
    /// A description of the failure.
    public var message: String
    /// The error behind the failure, if any: the backend's (a `RedisError`), or a lower layer's.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var isStoreUnavailable: Bool { code.meansStoreUnavailable }

    public var description: String {
        if let underlying { return "\(code): \(message) (\(underlying))" }
        return "\(code): \(message)"
    }
}
