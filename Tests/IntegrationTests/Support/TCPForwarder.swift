import AMQP
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP forwarder on 127.0.0.1 and a port of its own, passing bytes both ways to a target: in the failover tests,
/// each one stands in for a node of a broker cluster in front of the one real broker. ``stop()`` is the node going
/// away: it stops listening and closes every connection through it, so clients see their connection drop.
final class TCPForwarder: Sendable {
    /// Writes what one side reads to the other, and closes the other when one side closes.
    private final class Glue: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let partner: any Channel

        init(partner: any Channel) { self.partner = partner }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            partner.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    let port: Int
    private let server: any Channel
    private let connections: NIOLockedValueBox<[any Channel]>

    /// The endpoint clients connect to.
    var endpoint: AMQPConfiguration.Endpoint { AMQPConfiguration.Endpoint(host: "127.0.0.1", port: port) }
    /// Connections forwarded so far that are still open (each counts once, its two sides as one).
    var openConnections: Int { connections.withLockedValue { $0.filter(\.isActive).count } / 2 }

    private init(server: any Channel, port: Int, connections: NIOLockedValueBox<[any Channel]>) {
        self.server = server
        self.port = port
        self.connections = connections
    }

    /// Listens and forwards every connection to `host:port`.
    static func start(to host: String, port targetPort: Int) async throws -> TCPForwarder {
        let connections = NIOLockedValueBox<[any Channel]>([])
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                // The accepted connection is read from only once its outbound side is connected and glued.
                ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { outbound in outbound.pipeline.addHandler(Glue(partner: inbound)) }
                    .connect(host: host, port: targetPort)
                    .flatMap { outbound in
                        connections.withLockedValue { $0 += [inbound, outbound] }
                        return inbound.pipeline.addHandler(Glue(partner: outbound))
                    }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TCPForwarder(server: server, port: server.localAddress?.port ?? 0, connections: connections)
    }

    /// Stops listening and closes every forwarded connection, both sides.
    func stop() async {
        try? await server.close()
        for channel in connections.withLockedValue({ $0 }) { try? await channel.close() }
    }
}
