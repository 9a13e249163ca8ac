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
    /// When the client's time runs out, or `nil` while the application works on a request.
    private var deadline: NIODeadline?
    /// At most one timer per connection. Requests only move ``deadline``: scheduling and cancelling a timer for each
    /// request cost the signed-in page a fifth of its throughput.
    private var timer: Scheduled<Void>?
    /// When ``timer`` fires.
    private var timerDue: NIODeadline?

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
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func stop() {
        deadline = nil
        timer?.cancel()
        timer = nil
        timerDue = nil
    }

    private func arm(_ duration: Duration, context: ChannelHandlerContext) {
        let (seconds, attoseconds) = duration.components
        let due = NIODeadline.now() + .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        deadline = due
        // A timer due later than the new deadline (the body's, say, when the head's is shorter) is replaced.
        if let timerDue, timerDue <= due { return }
        timer?.cancel()
        schedule(at: due, context: context)
    }

    private func disarm() {
        deadline = nil
    }

    /// The one timer: when it fires, it closes the connection if the deadline has passed, sleeps until the deadline
    /// if it moved, and stops while no deadline runs.
    private func schedule(at due: NIODeadline, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timerDue = due
        timer = context.eventLoop.scheduleTask(deadline: due) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.timerDue = nil
            guard let deadline = handler.deadline else { return }
            if deadline <= .now() {
                context.close(promise: nil)
            } else {
                handler.schedule(at: deadline, context: context)
            }
        }
    }
}
