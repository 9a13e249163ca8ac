/// The one error type of the Redis client.
///
/// Every failure, whether it comes from the network, from hiredis, from the server or from a bad configuration,
/// is a ``RedisError`` with a ``Code`` that callers can switch on, the server's or the library's message, and the
/// context it happened in (the command name, the endpoint).
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    ///
    /// A struct over a private enum, so that codes can be added without breaking source compatibility.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case connectionFailed
            case connectionClosed
            case timeout
            case serverError
            case protocolError
            case authenticationFailed
            case closed
            case cancelled
            case invalidConfiguration
            case unexpectedReply
            case invalidCommand
            case notMaster
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The server could not be reached (refused, unresolvable, unreachable, connect timeout), or the
        /// pool has no live connection right now.
        public static let connectionFailed = Code(.connectionFailed)
        /// An established connection broke (reset, end of stream) while commands were in flight.
        public static let connectionClosed = Code(.connectionClosed)
        /// The server did not answer within the command timeout; the connection was discarded.
        public static let timeout = Code(.timeout)
        /// The server answered with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
        public static let serverError = Code(.serverError)
        /// The bytes on the wire were not valid RESP.
        public static let protocolError = Code(.protocolError)
        /// `AUTH` was refused on connect (wrong password, unknown user).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The client or subscriber was closed by the application.
        public static let closed = Code(.closed)
        /// The waiting task was cancelled.
        public static let cancelled = Code(.cancelled)
        /// A configuration or URL is invalid; the message names the problem.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The server answered with a reply of a type the caller did not expect.
        public static let unexpectedReply = Code(.unexpectedReply)
        /// The command cannot be sent as given (no arguments at all).
        public static let invalidCommand = Code(.invalidCommand)
        /// A node found through Sentinel is not, or is no longer, the master: `ROLE` said otherwise, or it answered
        /// `-READONLY`. Nothing was written; the connection was dropped and the master is being rediscovered.
        public static let notMaster = Code(.notMaster)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The server's error message, or the library's description of the failure.
    public var message: String
    /// Where it happened: the command name, the endpoint, or both.
    public var context: String?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What kind of failure this is.
    ///   - message: The server's message or a description of the failure.
    ///   - context: Where it happened, for example `"GET on 127.0.0.1:6379"`.
    public init(_ code: Code, _ message: String, context: String? = nil) {
        self.code = code
        self.message = message
        self.context = context
    }

    /// For a ``Code/serverError``, the error prefix the server sent (`ERR`, `WRONGTYPE`, `NOSCRIPT`, ...).
    public var serverErrorPrefix: Substring? {
        guard code == .serverError else { return nil }
        return message.split(separator: " ", maxSplits: 1).first
    }

    public var description: String {
        if let context { return "\(code): \(message) (\(context))" }
        return "\(code): \(message)"
    }

    func adding(context newContext: String) -> RedisError {
        var copy = self
        copy.context = context.map { "\(newContext); \($0)" } ?? newContext
        return copy
    }
}
