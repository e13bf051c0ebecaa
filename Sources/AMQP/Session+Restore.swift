import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Restoring what a connection had after it reconnects (perhaps to another node of a cluster): the recorded
/// topology, then every channel with its confirm mode, prefetch and consumer.
extension Session {
    /// Declares again what was declared, and reopens every channel with its confirm mode, prefetch and consumer.
    ///
    /// A declaration the broker refuses (406: it exists with other arguments) is reported and dropped, and a consumer
    /// whose queue is gone ends with an error, as they would on the first connection. But a refusal that says the
    /// queue's home node is down (a cluster's node went away, see ``AMQPError/isQueueHomeNodeDown``) is passing: the
    /// declaration and the consumer are kept and this attempt fails as a whole, so the session tries the next
    /// endpoint, and again later, until the queue is back (or a mirror has taken over).
    func restore() throws {
        for entry in topology.entries {
            do {
                switch entry {
                case .exchange(let e): try rawDeclareExchange(e, passive: false)
                case .queue(let q): _ = try rawDeclareQueue(q, passive: false)
                case .binding(let b): try rawBind(b, unbind: false)
                }
            } catch let error as AMQPError where error.code == .channelClosedByBroker {
                if error.isQueueHomeNodeDown { throw Self.unavailable(error) }
                logger.error(
                    "cannot restore a declaration after reconnecting; dropping it",
                    metadata: [
                        "amqp.declaration": "\(entry)", "error": "\(error)",
                    ])
                topology.remove(entry)
            }
        }
        for number in channels.keys.sorted() {
            guard let channel = channels[number] else { continue }
            do {
                try openChannel(channel)
            } catch let error as AMQPError where error.code == .channelClosedByBroker {
                if error.isQueueHomeNodeDown { throw Self.unavailable(error) }
                if let consumer = channel.consumer {
                    consumer.continuation.finish(
                        throwing: AMQPError(
                            .consumerCancelled, "consumer '\(consumer.tag)' on queue '\(consumer.queue)' could not be restored after reconnecting",
                            replyCode: error.replyCode, replyText: error.replyText))
                }
                channels[number] = nil
            }
        }
    }

    /// A restore that must be tried again on another connection: the queue is on a node that is down.
    static func unavailable(_ error: AMQPError) -> AMQPError {
        AMQPError(
            .connectionFailed, "\(error.message): the queue's home node is down; keeping it and trying again",
            replyCode: error.replyCode, replyText: error.replyText)
    }

    func openChannel(_ channel: ChannelState) throws {
        guard let conn = connection else { throw lostError() }
        _ = amqp_channel_open(conn, channel.number)
        try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot open channel \(channel.number)")
        channel.nextPublishTag = 0
        channel.lowestPendingTag = 1
        channel.resetDeliveries()
        if channel.confirms {
            _ = amqp_confirm_select(conn, channel.number)
            try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot enable publisher confirms on channel \(channel.number)")
        }
        if let consumer = channel.consumer {
            if consumer.prefetch > 0 {
                _ = amqp_basic_qos(conn, channel.number, 0, consumer.prefetch, 0)
                try check(
                    amqp_get_rpc_reply(conn), channel: channel.number,
                    context: "cannot set prefetch \(consumer.prefetch) on channel \(channel.number)")
            }
            let arena = CArena()
            _ = amqp_basic_consume(
                conn, channel.number, arena.bytes(consumer.queue), arena.bytes(consumer.tag), 0,
                consumer.noAck ? 1 : 0, consumer.exclusive ? 1 : 0, arena.table(consumer.arguments))
            try check(amqp_get_rpc_reply(conn), channel: channel.number, context: "cannot consume from queue '\(consumer.queue)'")
        }
        channel.isOpen = true
    }
}
