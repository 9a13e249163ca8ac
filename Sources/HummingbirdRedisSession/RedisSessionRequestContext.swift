#if Hummingbird
public import Hummingbird
public import RedisSession

/// A request context that carries the visitor's session: what ``RedisSessionMiddleware`` needs of the application's
/// context.
///
/// ```swift
/// struct AppContext: RedisSessionRequestContext {
///     var coreContext: CoreRequestContextStorage
///     let session = RequestSession()
///     init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
/// }
/// ```
public protocol RedisSessionRequestContext: RequestContext {
    /// The visitor's session; one per request.
    var session: RequestSession { get }
}
#endif  // Hummingbird
