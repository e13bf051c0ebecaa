import HummingbirdCore
import Logging
import NIOCore

/// Closes a connection whose first request head (request line and headers, up to the blank line) has not arrived
/// whole within `timeout` of its opening, or that got no answer to it within `answerTimeout` after: clients that open
/// connections and send slowly, or nothing, or a head the HTTP parser refuses (Hummingbird's WebSocket upgrade
/// channel answers none of those, and leaves the connection open), cannot hold the endpoint's connections. Later
/// requests on the connection are bounded by the idle timeout.
///
/// Hummingbird's idle timeout only starts once the first head is parsed (its handlers are added after the WebSocket
/// upgrade check), and NIO has no head deadline, hence this small handler in front of the HTTP decoder (after TLS).
struct HeaderTimeoutChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let timeout: TimeAmount
    let answerTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let (timeout, answerTimeout) = (self.timeout, self.answerTimeout)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(HeaderTimeoutHandler(timeout: timeout, answerTimeout: answerTimeout))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

final class HeaderTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let answerTimeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Whether the first head arrived whole (the deadline then waits for the answer).
    private var headComplete = false
    /// Whether the connection answered once: from then on this handler only passes bytes on. (It stays in the
    /// pipeline: removing it while the WebSocket upgrade rearranges the handlers behind it breaks the upgrade.)
    private var answered = false
    /// The last bytes read, to find "\r\n\r\n" across reads.
    private var tail: [UInt8] = []

    init(timeout: TimeAmount, answerTimeout: TimeAmount) {
        self.timeout = timeout
        self.answerTimeout = answerTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context, in: timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    private func arm(_ context: ChannelHandlerContext, in amount: TimeAmount) {
        deadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: amount) {
            loopBound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered, !headComplete else {
            context.fireChannelRead(data)
            return
        }
        let buffer = unwrapInboundIn(data)
        let bytes = tail + (buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? [])
        let complete =
            bytes.count >= 4
            && (0...(bytes.count - 4)).contains { i in
                bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10
            }
        tail = Array(bytes.suffix(3))
        if complete {
            headComplete = true
            tail = []
            arm(context, in: answerTimeout)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !answered {
            answered = true
            deadline?.cancel()
            deadline = nil
        }
        context.write(data, promise: promise)
    }
}
