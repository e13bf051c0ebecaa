public import Foundation

/// The basic properties of an AMQP message.
public struct AMQPProperties: Sendable, Hashable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable?
    /// 2 = persistent, 1 = transient.
    public var deliveryMode: UInt8?
    /// 0…255; queues declared with `x-max-priority` N honour 0…N.
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageID: String?
    /// Seconds since 1970 (AMQP timestamps have one-second resolution).
    public var timestamp: UInt64?
    public var type: String?
    public var userID: String?
    public var appID: String?

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable? = nil,
        deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil,
        timestamp: UInt64? = nil, type: String? = nil, userID: String? = nil, appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }

    /// Whether the message is marked persistent (delivery mode 2).
    public var isPersistent: Bool { deliveryMode == 2 }
}

/// A message to publish.
public struct AMQPMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: AMQPProperties
    /// Ask the broker to return the message when no queue matches (it then fails with `.unroutable`).
    public var mandatory: Bool

    public init(exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties = AMQPProperties(), mandatory: Bool = false) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

/// A message delivered to a consumer. Settle it with `ack`, `nack` or `reject`; unsettled deliveries are
/// redelivered by the broker when the consumer's connection goes away.
public struct AMQPDelivery: Sendable {
    public let exchange: String
    public let routingKey: String
    /// The body; for a message over its consumer's `maxBodySize`, only its first ``truncatedPrefix`` bytes (see
    /// ``isTruncated``).
    public let body: [UInt8]
    /// The body's size as the broker announced it (its content header's `body_size`).
    public let bodySize: Int
    /// True when the body was over the consumer's `maxBodySize`: its frames were read and dropped as they came,
    /// and ``body`` holds only its first bytes.
    public var isTruncated: Bool { bodySize > body.count }
    /// How many bytes of a body over the limit are kept.
    public static let truncatedPrefix = 4096
    public let properties: AMQPProperties
    /// True when the broker delivered this message before (to this or another consumer) without an ack.
    public let redelivered: Bool
    public let deliveryTag: UInt64
    public let consumerTag: String
    /// When the connection's thread read the delivery from the socket: what came before it is the broker's time
    /// (queueing, transit), what comes after the consumer's.
    public let receivedAt: Date
    let settler: DeliverySettler?

    init(
        exchange: String, routingKey: String, body: [UInt8], bodySize: Int, properties: AMQPProperties, redelivered: Bool,
        deliveryTag: UInt64, consumerTag: String, receivedAt: Date, settler: DeliverySettler?
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.bodySize = bodySize
        self.properties = properties
        self.redelivered = redelivered
        self.deliveryTag = deliveryTag
        self.consumerTag = consumerTag
        self.receivedAt = receivedAt
        self.settler = settler
    }

    /// Acknowledges this delivery (and, with `multiple`, every earlier unacknowledged one of the same consumer).
    /// Sent to the connection's thread without waiting. A delivery received before a reconnect can no longer be
    /// acknowledged: the broker has already requeued it, so the ack is dropped and the message comes again.
    public func ack(multiple: Bool = false) {
        settler?.settle(.ack(multiple: multiple), tag: deliveryTag)
    }

    /// Negatively acknowledges: the broker requeues the message, or dead-letters/drops it when `requeue` is false.
    public func nack(requeue: Bool = true, multiple: Bool = false) {
        settler?.settle(.nack(requeue: requeue, multiple: multiple), tag: deliveryTag)
    }

    /// Rejects this delivery alone.
    public func reject(requeue: Bool = true) {
        settler?.settle(.reject(requeue: requeue), tag: deliveryTag)
    }
}

enum Settlement: Sendable {
    case ack(multiple: Bool)
    case nack(requeue: Bool, multiple: Bool)
    case reject(requeue: Bool)
}

/// Sends settlements of one consumer's deliveries back to the connection thread, tagged with the connection
/// generation they belong to (delivery tags are void after a reconnect).
final class DeliverySettler: Sendable {
    let mailbox: Mailbox
    let channel: UInt16
    let generation: UInt64

    init(mailbox: Mailbox, channel: UInt16, generation: UInt64) {
        self.mailbox = mailbox
        self.channel = channel
        self.generation = generation
    }

    func settle(_ settlement: Settlement, tag: UInt64) {
        mailbox.post(.settle(generation: generation, channel: channel, tag: tag, settlement))
    }
}
