public import Hummingbird
import NIOCore
import RedisSession

/// The request context: Hummingbird's core storage plus the visitor's session, loaded by ``SessionMiddleware``.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The signed-in or anonymous session, if the request carried a valid cookie for a live session.
    var session: Session?
    /// The request carried a session cookie that names no live session: the response clears it.
    var staleSessionCookie = false

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
