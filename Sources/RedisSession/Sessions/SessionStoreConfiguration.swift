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
    /// How writes that end sessions wait for a replica: `destroy`, `destroyAll` (log out everywhere, a password
    /// change), `regenerate` and a change of user. Lost in a failover, such a write would bring a session back, so
    /// it is followed by `WAIT` in the same round trip; when the master has replicas and none confirms in time, the
    /// call fails with ``SessionErrorCode/storeUnavailable``. A master without replicas has nothing to wait for.
    /// Default: one replica within 250 ms.
    ///
    /// This narrows the loss window of an unplanned failover; it does not close it. A write can be confirmed by a
    /// replica that is not the one promoted, and a manual `SENTINEL FAILOVER` keeps the old master accepting writes
    /// for seconds before it is demoted (see docs/SENTINEL.md).
    public var replicaAcknowledgement: ReplicaAcknowledgement?
    /// The keys that encrypt every attribute value and label at rest, or `nil` to store them as they are (the
    /// default). ``MemorySessionStore`` keeps nothing at rest and ignores it.
    public var encryption: SessionEncryption?

    /// How many replicas must confirm a security-relevant write, and how long to wait for them.
    public struct ReplicaAcknowledgement: Sendable, Hashable {
        /// Replicas that must confirm. Default 1.
        public var replicas: Int
        /// How long the server waits for them. Default 250 ms.
        public var timeout: Duration

        /// - Parameters:
        ///   - replicas: Replicas that must confirm (at least 1).
        ///   - timeout: How long the server waits.
        public init(replicas: Int = 1, timeout: Duration = .milliseconds(250)) {
            precondition(replicas >= 1 && timeout > .zero, "a replica acknowledgement needs replicas and a timeout")
            self.replicas = replicas
            self.timeout = timeout
        }
    }

    /// Creates a configuration; every argument has a default.
    ///
    /// - Parameters:
    ///   - keyPrefix: Prefix of every key.
    ///   - idleTimeout: Sliding idle timeout.
    ///   - absoluteLifetime: Hard upper bound on a session's life.
    ///   - touchInterval: Minimum interval between two expiry refreshes of one session.
    ///   - maximumEncodedSize: Byte limit on attributes.
    ///   - maximumAttributeCount: Count limit on attributes.
    ///   - replicaAcknowledgement: How writes that end sessions wait for a replica, or `nil` not to wait.
    ///   - encryption: The keys that encrypt values at rest, or `nil` for none.
    public init(
        keyPrefix: String = "rsess:",
        idleTimeout: Duration = .seconds(30 * 60),
        absoluteLifetime: Duration = .seconds(12 * 3600),
        touchInterval: Duration = .seconds(60),
        maximumEncodedSize: Int = 64 * 1024,
        maximumAttributeCount: Int = 64,
        replicaAcknowledgement: ReplicaAcknowledgement? = ReplicaAcknowledgement(),
        encryption: SessionEncryption? = nil
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
        self.replicaAcknowledgement = replicaAcknowledgement
        self.encryption = encryption
    }
}

extension SessionStoreConfiguration {
    /// Throws ``SessionErrorCode/tooManyAttributes`` or ``SessionErrorCode/tooLarge`` when a session of this
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
