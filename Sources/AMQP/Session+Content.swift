import CRabbitMQ
import Foundation
import Logging

/// A delivery whose content header and body frames are still arriving.
///
/// The frame loop reads a delivery's frames as they come instead of waiting for the whole message in
/// `amqp_read_message`: the content header announces the body's size, so a body over the consumer's limit is never
/// held whole (its frames are counted and dropped, only its first bytes kept), and a slow body does not stall the
/// connection's other channels.
struct IncomingDelivery {
    let exchange: String
    let routingKey: String
    let consumerTag: String
    let deliveryTag: UInt64
    let redelivered: Bool
    let maxBodySize: Int?
    var properties = AMQPProperties()
    /// Announced by the content header; nil until it arrived.
    var bodySize: Int?
    var received = 0
    var body: [UInt8] = []

    init(exchange: String, routingKey: String, consumerTag: String, deliveryTag: UInt64, redelivered: Bool, maxBodySize: Int?) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.maxBodySize = maxBodySize
    }

    /// Whether the body is kept whole.
    var keepsBody: Bool { (bodySize ?? 0) <= (maxBodySize ?? Int.max) }

    var isComplete: Bool { bodySize.map { received >= $0 } ?? false }

    mutating func header(bodySize: UInt64, properties: AMQPProperties) {
        let size = Int(clamping: bodySize)
        self.bodySize = size
        self.properties = properties
        body.reserveCapacity(keepsBody ? size : min(size, AMQPDelivery.truncatedPrefix))
    }

    mutating func append(_ fragment: UnsafeRawBufferPointer) {
        received += fragment.count
        if keepsBody {
            body.append(contentsOf: fragment)
        } else if body.count < AMQPDelivery.truncatedPrefix {
            body.append(contentsOf: fragment.prefix(AMQPDelivery.truncatedPrefix - body.count))
        }
    }
}

extension Session {
    /// A content header or body frame: the next part of the delivery under way on its channel.
    func handleContent(_ frame: amqp_frame_t) {
        guard let conn = connection else { return }
        let number = frame.channel
        guard let channel = channels[number], var incoming = channel.incoming else {
            // Content of a returned message is read with its method; anything else here is out of order.
            logger.trace("ignoring a content frame without a delivery", metadata: ["amqp.channel": "\(number)"])
            return
        }
        if frame.frame_type == UInt8(AMQP_FRAME_HEADER) {
            let properties =
                frame.payload.properties.decoded.map {
                    CDecode.properties($0.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
                } ?? AMQPProperties()
            incoming.header(bodySize: frame.payload.properties.body_size, properties: properties)
            if !incoming.keepsBody {
                logger.warning(
                    "a delivery's body is over the consumer's limit; reading past it without keeping it",
                    metadata: [
                        "amqp.consumer_tag": "\(incoming.consumerTag)", "amqp.body_size": "\(incoming.bodySize ?? 0)",
                        "amqp.max_body_size": "\(incoming.maxBodySize ?? 0)",
                    ])
            }
        } else {
            guard incoming.bodySize != nil else {
                lose(AMQPError(.connectionLost, "a body frame arrived before its content header on channel \(number)"))
                return
            }
            let fragment = frame.payload.body_fragment
            incoming.append(UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.len))
        }
        guard incoming.isComplete else {
            channel.incoming = incoming
            // A body dropped as it comes must not pile up in rabbitmq-c's buffers either.
            if !incoming.keepsBody { amqp_maybe_release_buffers_on_channel(conn, number) }
            return
        }
        channel.incoming = nil
        guard let consumer = channel.consumer else { return }
        if !consumer.noAck {
            channel.unsettled.insert(incoming.deliveryTag)
            channel.lastDelivered = max(channel.lastDelivered, incoming.deliveryTag)
        }
        consumer.continuation.yield(
            AMQPDelivery(
                exchange: incoming.exchange, routingKey: incoming.routingKey, body: incoming.body, bodySize: incoming.bodySize ?? 0,
                properties: incoming.properties, redelivered: incoming.redelivered, deliveryTag: incoming.deliveryTag,
                consumerTag: incoming.consumerTag, receivedAt: Date(), settler: consumer.noAck ? nil : consumer.settler))
    }
}
