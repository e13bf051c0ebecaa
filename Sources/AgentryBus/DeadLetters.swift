public import AMQP
public import AgentryCore
import Foundation

/// Parks messages that cannot be processed in `agentry.dead`, with the reason in their headers, so that nothing
/// is dropped and nothing is retried forever. `agentry.dead` is a parking lot: nothing consumes it automatically.
public struct DeadLetters: Sendable {
    /// Header names set on a parked message.
    public enum Header {
        /// A short reason code: `not-json`, `unknown-priority`, `too-large`, …
        public static let reason = "x-agentry-dead-reason"
        /// The reason in words.
        public static let message = "x-agentry-dead-message"
        /// The queue the message was taken from.
        public static let queue = "x-agentry-dead-queue"
        public static let originalExchange = "x-agentry-original-exchange"
        public static let originalRoutingKey = "x-agentry-original-routing-key"
        /// When it was parked (ISO 8601).
        public static let parkedAt = "x-agentry-dead-at"
        /// The size of a body that was over the limit: the parked copy holds only its first bytes.
        public static let bodySize = "x-agentry-dead-body-size"
        /// The attempt a delivery to an agent's queue is (1 when absent), set on retries.
        public static let attempt = "x-agentry-attempt"
        /// The delay bucket of a retry, matched by the headers exchange `agentry.delay` (no `x-` prefix: the headers
        /// exchange ignores such headers).
        public static let delay = "agentry-delay-ms"
    }

    let channel: AMQPChannel

    public init(channel: AMQPChannel) {
        self.channel = channel
    }

    /// Publishes a copy of the delivery to `agentry.dead` (with confirm). The caller acks the original afterwards.
    /// `replayTo` is where `agentry dead replay` sends it back (default: where it was first published); a failed
    /// task is replayed to its agent's queue only, through the default exchange.
    public func park(
        _ delivery: AMQPDelivery, reason: String, message: String, queue: String,
        replayTo: (exchange: String, routingKey: String)? = nil, event: Event? = nil
    ) async throws {
        // A parked task carries the whole event envelope, so that a replay through the default exchange (whose
        // routing key is a queue name, not the event type) still reads as the same event.
        var properties = event.map { EventBus.message(for: $0).properties } ?? delivery.properties
        if let original = delivery.properties.headers, event != nil { properties.headers = original }
        var headers = properties.headers ?? [:]
        headers[Header.reason] = .string(reason)
        headers[Header.message] = .string(message)
        headers[Header.queue] = .string(queue)
        headers[Header.originalExchange] = .string(replayTo?.exchange ?? delivery.exchange)
        headers[Header.originalRoutingKey] = .string(replayTo?.routingKey ?? delivery.routingKey)
        headers[Header.parkedAt] = .string(Timestamp.format(Date()))
        if delivery.isTruncated { headers[Header.bodySize] = .int(Int64(delivery.bodySize)) }
        properties.headers = headers
        properties.deliveryMode = 2
        do {
            try await channel.publish(
                AMQPMessage(
                    exchange: Topology.deadExchange, routingKey: delivery.routingKey,
                    body: event.map(EventWireFormat.encode) ?? delivery.body, properties: properties))
        } catch let error as AMQPError where error.code == .publishNacked {
            // agentry.dead is declared with a length limit and `x-overflow: reject-publish`: when full, the broker
            // refuses the copy. The caller keeps the original unacknowledged and tries again later.
            throw BusError(
                "agentry.dead refused the message (it is full: the queue's x-max-length or x-max-length-bytes is reached); the message stays where it is and is tried again. Look at `agentry dead list`, then replay or purge parked messages (\(error))"
            )
        }
    }
}

/// A message parked in `agentry.dead`, as `agentry dead list` shows it.
public struct ParkedMessage: Sendable, Hashable {
    /// The message id, or an id derived from the message when it has none.
    public var id: String
    public var originalExchange: String
    public var originalRoutingKey: String
    public var reason: String
    public var message: String
    public var queue: String
    public var parkedAt: String
    /// The body's size; for a body that was over the size limit, its size then (``truncated``).
    public var bodySize: Int
    /// Whether only the first bytes of the body were kept (it was over the size limit).
    public var truncated: Bool
    /// The first bytes of the body, as text.
    public var preview: String

    init(_ delivery: AMQPDelivery) {
        let headers = delivery.properties.headers ?? [:]
        func header(_ name: String) -> String { headers[name]?.stringValue ?? "" }
        id =
            delivery.properties.messageID
            ?? EventID.derived(from: [Array(delivery.routingKey.utf8), delivery.body]).rawValue
        originalExchange = headers[DeadLetters.Header.originalExchange]?.stringValue ?? Topology.eventsExchange
        originalRoutingKey = headers[DeadLetters.Header.originalRoutingKey]?.stringValue ?? delivery.routingKey
        reason = header(DeadLetters.Header.reason)
        message = header(DeadLetters.Header.message)
        queue = header(DeadLetters.Header.queue)
        parkedAt = header(DeadLetters.Header.parkedAt)
        let original = headers[DeadLetters.Header.bodySize]?.intValue.map { Int($0) }
        bodySize = original ?? delivery.body.count
        truncated = original != nil
        preview = String(decoding: delivery.body.prefix(80), as: UTF8.self)
    }
}

extension AMQPDelivery {
    /// The event this delivery carries, or why it is not one. A body that was over the consumer's size limit (read
    /// only in part: ``AMQP/AMQPDelivery/isTruncated``) is `too-large`.
    public func decodeEvent(maxBodySize: Int) throws(EventDecodingError) -> Event {
        if isTruncated {
            throw EventDecodingError(
                .tooLarge, "body is \(bodySize) bytes; the limit is \(maxBodySize) bytes (only its first \(body.count) bytes were read)")
        }
        return try EventWireFormat.decode(body: body, envelope: eventEnvelope, maxBodySize: maxBodySize)
    }
}
