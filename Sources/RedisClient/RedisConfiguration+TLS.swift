extension RedisConfiguration {
    /// TLS to every node of the topology: the server, the sentinels and the masters they name, or every node of a
    /// cluster, including the ones `CLUSTER SLOTS` and `MOVED` announce.
    ///
    /// The connection runs TLS itself, through the system's OpenSSL under hiredis's reader: TLS 1.2 or later,
    /// renegotiation off, the handshake bounded by ``RedisConfiguration/connectTimeout``. By default the server's
    /// chain is verified against the system's trust store and its certificate must name the server; nothing ever
    /// falls back to plaintext.
    ///
    /// ```swift
    /// // A managed Redis with a public CA: the URL is enough.
    /// let managed = try RedisConfiguration(url: "rediss://:token@my-cache.example.com:6380")
    /// // A private CA and a client certificate (mutual TLS), in code.
    /// var configuration = RedisConfiguration(topology: .standalone(.tcp(host: "redis.internal", port: 6380)))
    /// configuration.tls = .init(caFile: "/etc/redis/ca.crt", certificateFile: "/etc/redis/client.crt",
    ///                           keyFile: "/etc/redis/client.key")
    /// ```
    public struct TLS: Sendable, Hashable {
        /// What the client checks of the server's certificate.
        public enum Verification: Sendable, Hashable {
            /// The chain up to a trusted CA, the validity dates, and that the certificate names the server. The
            /// default.
            case full
            /// Nothing: the traffic is encrypted, but anyone on the path can pose as the server. Only for a test
            /// server whose certificate cannot be checked; every connect writes a warning to standard error.
            case insecureNoVerification
        }

        /// A PEM file of CA certificates to trust, or `nil` for the system's trust store (Debian's
        /// `ca-certificates`).
        public var caFile: String?
        /// A PEM certificate (chain) the client presents, for servers that require one (`tls-auth-clients yes`).
        public var certificateFile: String?
        /// The PEM private key of ``certificateFile``.
        public var keyFile: String?
        /// The name sent as SNI and that every node's certificate must carry, or `nil` for the first host the
        /// configuration names (the server, the first sentinel or the first seed).
        ///
        /// One name for all nodes, because the nodes a sentinel or a cluster announces are addresses, and a managed
        /// service's certificate names the service (often with a wildcard), not each node's address.
        public var serverName: String?
        /// What is checked of the server's certificate. Default ``Verification/full``.
        public var verification: Verification

        /// - Parameters:
        ///   - caFile: CA certificates to trust, or `nil` for the system's.
        ///   - certificateFile: The client's certificate, for mutual TLS.
        ///   - keyFile: The client's private key, with `certificateFile`.
        ///   - serverName: The name to send and verify, or `nil` for the configured host.
        ///   - verification: What is checked; spell ``Verification/insecureNoVerification`` to check nothing.
        public init(
            caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil,
            verification: Verification = .full
        ) {
            precondition(
                (certificateFile == nil) == (keyFile == nil), "a client certificate needs its key, and a key its certificate")
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.serverName = serverName
            self.verification = verification
        }
    }

    /// The name every node's certificate is checked against: ``TLS/serverName``, else the first host this
    /// configuration names. `nil` without TLS.
    var tlsServerName: String? {
        guard let tls else { return nil }
        if let name = tls.serverName { return name }
        let first: Endpoint? =
            switch topology {
            case .standalone(let endpoint): endpoint
            case .sentinel(let sentinel): sentinel.sentinels.first
            case .cluster(let cluster): cluster.seeds.first
            }
        if case .tcp(let host, _) = first { return host }
        return nil
    }
}

extension RedisConfiguration {
    /// This configuration aimed at one node the topology named or announced (a cluster primary), with TLS still
    /// verified against the deployment's one name, not the node's address: for a tool that must visit every node
    /// (a `SCAN` of each primary).
    public func aimed(at node: Endpoint) -> RedisConfiguration {
        var aimed = self
        if var tls = aimed.tls {
            tls.serverName = tlsServerName
            aimed.tls = tls
        }
        aimed.topology = .standalone(node)
        return aimed
    }
}
