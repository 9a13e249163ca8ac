public import Hummingbird
import RedisSession

/// The request context: Hummingbird's core storage plus the visitor's session, loaded by ``SessionMiddleware``.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The signed-in or anonymous session, if the request carried a valid cookie for a live session.
    var session: Session?
    /// The request carried a session cookie that names no live session: the response clears it.
    var staleSessionCookie = false

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// Forms are small; anything larger is not a form this app serves.
    public var maxUploadSize: Int { 64 * 1024 }
}
