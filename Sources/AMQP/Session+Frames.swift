import CRabbitMQ
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Reading the frames that are ready and acting on their methods.
extension Session {
    func readFrames(limit: Int) {
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        var frame = amqp_frame_t()
        for _ in 0..<limit {
            guard let conn = connection else { return }
            let status = amqp_simple_wait_frame_noblock(conn, &frame, &zero)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                lose(AMQPError(.connectionLost, "reading from RabbitMQ failed: \(libraryErrorText(status))"))
                return
            }
            switch frame.frame_type {
            case UInt8(AMQP_FRAME_METHOD): handleMethod(frame.payload.method, channel: frame.channel)
            case UInt8(AMQP_FRAME_HEADER), UInt8(AMQP_FRAME_BODY): handleContent(frame)
            default: break
            }
        }
    }

    func handleMethod(_ method: amqp_method_t, channel number: UInt16) {
        guard let conn = connection else { return }
        switch method.id {
        case Method.basicDeliver:
            // Its content header and body frames follow, read by the frame loop like any other frame (see
            // `handleContent`): a body over the consumer's limit is dropped frame by frame, never held whole.
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            guard let channel = channels[number] else { return }
            channel.incoming = IncomingDelivery(
                exchange: deliver.exchange.string, routingKey: deliver.routing_key.string,
                consumerTag: deliver.consumer_tag.string, deliveryTag: deliver.delivery_tag,
                redelivered: deliver.redelivered != 0,
                maxBodySize: channel.consumer?.maxBodySize)

        case Method.basicAck, Method.basicNack:
            guard let channel = channels[number] else { return }
            if method.id == Method.basicAck {
                let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                confirm(channel: channel, tag: ack.delivery_tag, multiple: ack.multiple != 0, nack: false)
            } else {
                let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                confirm(channel: channel, tag: nack.delivery_tag, multiple: nack.multiple != 0, nack: true)
            }

        case Method.basicReturn:
            let ret = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let code = ret.reply_code
            let text = ret.reply_text.string
            var message = amqp_message_t()
            let reply = amqp_read_message(conn, number, &message, 0)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
                lose(Self.error(from: reply, context: "cannot read a returned message on channel \(number)") ?? lostError())
                return
            }
            let id = CDecode.properties(message.properties).messageID
            amqp_destroy_message(&message)
            if let id, let channel = channels[number] {
                channel.returned[id] = (code, text)
            } else {
                logger.warning("a mandatory message without message id was returned", metadata: ["amqp.reply": "\(code) \(text)"])
            }

        case Method.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(
                .channelClosedByBroker, "RabbitMQ closed channel \(number)",
                replyCode: close.reply_code, replyText: close.reply_text.string)
            sendCloseOK(channel: number)
            guard let channel = channels[number] else { return }
            logger.warning("channel closed by the broker; reopening it", metadata: ["amqp.channel": "\(number)", "error": "\(error)"])
            channel.isOpen = false
            for pending in channel.pending.values { pending.continuation.resume(throwing: error) }
            channel.pending.removeAll()
            channel.returned.removeAll()
            do {
                try openChannel(channel)
            } catch {
                if let consumer = channel.consumer {
                    consumer.continuation.finish(throwing: error)
                }
                channels[number] = nil
            }

        case Method.channelCloseOK:
            for then in closingChannels.removeValue(forKey: number) ?? [] { then() }

        case Method.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(
                .connectionClosedByBroker, "RabbitMQ closed the connection",
                replyCode: close.reply_code, replyText: close.reply_text.string)
            sendConnectionCloseOK()
            lose(error)

        case Method.basicCancel:
            // The broker cancelled the consumer (its queue was deleted, or the node holding it went away).
            guard let channel = channels[number], let consumer = channel.consumer else { return }
            consumer.continuation.finish(
                throwing: AMQPError(
                    .consumerCancelled, "RabbitMQ cancelled consumer '\(consumer.tag)' on queue '\(consumer.queue)'; was the queue deleted?"))
            closeChannel(number, error: AMQPError(.consumerCancelled, "consumer cancelled"))

        case Method.basicCancelOK:
            channels[number]?.consumer?.continuation.finish()

        case Method.connectionBlocked:
            let reason = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee.reason.string
            logger.error(
                "RabbitMQ blocked this connection (a resource alarm): its publishes wait until the alarm clears",
                metadata: [
                    "amqp.blocked_reason": "\(reason)", "amqp.connection": "\(configuration.options.connectionName ?? "")",
                ])
            snapshot.withLockedValue {
                $0.isBlocked = true
                $0.blockedReason = reason.isEmpty ? "a resource alarm" : reason
            }

        case Method.connectionUnblocked:
            logger.warning(
                "RabbitMQ unblocked this connection: the alarm cleared",
                metadata: ["amqp.connection": "\(configuration.options.connectionName ?? "")"])
            snapshot.withLockedValue {
                $0.isBlocked = false
                $0.blockedReason = nil
            }

        default:
            logger.trace("ignoring method", metadata: ["amqp.method": "\(method.id)", "amqp.channel": "\(number)"])
        }
    }
}
