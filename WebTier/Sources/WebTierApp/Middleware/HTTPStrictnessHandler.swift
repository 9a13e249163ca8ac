import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Refuses requests whose target or framing is ambiguous, at the instance, before routing, not only behind a load
/// balancer that might normalise them (RFC 9112):
///
/// - no `Host`, or more than one: `400`;
/// - a `Transfer-Encoding` other than `chunked`: `501`. Where such a body ends is unknown, and what follows it could
///   be read as a second request (request smuggling).
///
/// Either way the refusal is the connection's last response: it closes, and nothing after the head is read as a
/// request. `Host` is required of HTTP/1.0 requests too: the version does not survive the conversion to
/// `HTTPRequest`, every client of a site sends one, and nginx sends one to its upstreams.
final class HTTPStrictnessHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    /// Once a request is refused, nothing more is read from the connection.
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case .head(let head) = unwrapInboundIn(data), let (status, message) = Self.refusal(of: head) {
            refused = true
            var buffer = context.channel.allocator.buffer(capacity: message.utf8.count)
            buffer.writeString(message)
            var fields: HTTPFields = [
                .contentType: "text/plain; charset=utf-8", .contentLength: String(buffer.readableBytes),
                .connection: "close",
            ]
            SecurityHeaders.apply(to: &fields)
            context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
            context.write(wrapOutboundOut(.body(buffer)), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.fireChannelRead(data)
    }

    /// Why a request head is refused, or `nil` to let it through.
    static func refusal(of head: HTTPRequest) -> (HTTPResponse.Status, String)? {
        // The conversion makes the first Host header the authority; a second one stays among the fields.
        guard head.authority?.isEmpty == false, head.headerFields[hostField] == nil else {
            return (.badRequest, "A request needs exactly one Host header.\n")
        }
        for value in head.headerFields[values: .transferEncoding] {
            for coding in value.split(separator: ",")
            where coding.filter({ $0 != " " && $0 != "\t" }).lowercased() != "chunked" {
                return (.notImplemented, "Only the chunked transfer coding is understood.\n")
            }
        }
        return nil
    }

    // swift-format-ignore: NeverForceUnwrap
    private static let hostField = HTTPField.Name("Host")!
}
