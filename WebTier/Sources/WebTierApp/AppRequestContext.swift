public import Hummingbird
public import HummingbirdRedisSession
import NIOCore
public import RedisSession

/// The request context: Hummingbird's core storage plus the visitor's session, loaded and written back by the
/// integration's `RedisSessionMiddleware`.
public struct AppRequestContext: RedisSessionRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The visitor's session: signed in, anonymous, or none.
    public let session = RequestSession()

    /// The connection, read only when a login records the device's address.
    private let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The peer's IP address (the load balancer's, behind one).
    var peerAddress: String? { channel.remoteAddress?.ipAddress }

    /// Forms are small; anything larger is not a form this app serves.
    public var maxUploadSize: Int { 64 * 1024 }
}
