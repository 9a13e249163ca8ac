#if Vapor
public import RedisSession
public import Vapor

extension Application {
    /// The proxies whose `X-Forwarded-For` ``Vapor/Request/clientAddress`` believes. Default none: the header is
    /// ignored and the client is the connection's peer.
    ///
    /// ```swift
    /// app.redisSessionTrustedProxies = try TrustedProxies(Environment.get("TRUSTED_PROXIES") ?? "")
    /// ```
    ///
    /// Vapor's own `req.peerAddress` believes the first `X-Forwarded-For` hop from anyone; key nothing that matters
    /// on it.
    public var redisSessionTrustedProxies: TrustedProxies {
        get { storage[TrustedProxiesKey.self] ?? .none }
        set { storage[TrustedProxiesKey.self] = newValue }
    }
}

extension Request {
    /// The client's address under ``Vapor/Application/redisSessionTrustedProxies``: the peer, or, behind a trusted
    /// proxy, the right-most `X-Forwarded-For` hop that is not one. Key login limits and device labels on it.
    public var clientAddress: String? {
        application.redisSessionTrustedProxies.clientAddress(
            peer: remoteAddress?.ipAddress, forwardedFor: headers[.xForwardedFor])
    }
}

private struct TrustedProxiesKey: StorageKey {
    typealias Value = TrustedProxies
}
#endif  // Vapor
