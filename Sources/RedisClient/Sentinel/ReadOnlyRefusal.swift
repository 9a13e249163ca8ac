extension RedisValue {
    /// Whether this reply (or, for a pipeline, any reply in it) is a replica refusing a write: `-READONLY`, also
    /// when it reaches the caller wrapped in a script's or a transaction's error.
    var isReadOnlyRefusal: Bool {
        switch self {
        case .error(let message): message.hasPrefix("READONLY") || message.contains("READONLY You can't write")
        case .array(let replies): replies.contains { $0.isReadOnlyRefusal }
        default: false
        }
    }
}
