import HTTPTypes
import NIOHTTPTypes
import NIOCore

/// Closes a connection whose client is too slow: a request head that does not arrive in time (counted from the
/// connection's start, or from the previous response on a kept-alive connection), or a request body that does not
/// finish in time.
///
/// The attack on the rig held instances' connections open with partial requests and idle HTTP/1.0 connections, which
/// nothing ever timed out. An idle timeout alone does not help: a client that sends one byte every few seconds is never
/// idle. These are deadlines for the whole head and the whole body. While the application works on a request, no
/// deadline runs: its own time is bounded by the Redis command timeout.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long a client has for each part of a request.
    struct Deadlines: Sendable, Hashable {
        /// From the connection's start (or the end of the previous response) until the request head is complete:
        /// it also closes an idle kept-alive connection.
        var head: Duration
        /// From the request head until the body's end.
        var body: Duration
    }

    private let deadlines: Deadlines
    private var timer: Scheduled<Void>?

    init(deadlines: Deadlines) {
        self.deadlines = deadlines
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(deadlines.head, context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(deadlines.head, context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: arm(deadlines.body, context: context)
        case .end: disarm()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The response is complete: the client has `head` for its next request on this connection.
        if case .end = unwrapOutboundIn(data) { arm(deadlines.head, context: context) }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    private func arm(_ deadline: Duration, context: ChannelHandlerContext) {
        disarm()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let (seconds, attoseconds) = deadline.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            loopBound.value.close(promise: nil)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
