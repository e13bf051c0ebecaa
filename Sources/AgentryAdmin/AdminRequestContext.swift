import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The admin router's request context: Hummingbird's WebSocket context, with the peer's address (recorded with each
/// webhook delivery).
struct AdminRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.remoteAddress = source.channel.remoteAddress
    }
}
