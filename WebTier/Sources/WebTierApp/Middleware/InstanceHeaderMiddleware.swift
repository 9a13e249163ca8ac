import HTTPTypes
public import Hummingbird

// Header name literals: the initialiser fails only on invalid names.
extension HTTPField.Name {
    // swift-format-ignore: NeverForceUnwrap
    static let xInstance = Self("X-Instance")!
    // swift-format-ignore: NeverForceUnwrap
    static let hxRequest = Self("HX-Request")!
    // swift-format-ignore: NeverForceUnwrap
    static let hxRefresh = Self("HX-Refresh")!
    // swift-format-ignore: NeverForceUnwrap
    static let xCSRFToken = Self("X-CSRF-Token")!
}

/// Adds `X-Instance: <instance id>` to every response, error responses included, so a load balancer's routing is
/// visible to tests and people.
public struct InstanceHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    let instanceID: String

    public init(instanceID: String) { self.instanceID = instanceID }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.xInstance] = instanceID
        return response
    }
}
