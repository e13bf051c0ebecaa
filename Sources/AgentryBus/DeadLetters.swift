public import AMQP
import AgentryCore
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
    }

    let channel: AMQPChannel

    public init(channel: AMQPChannel) {
        self.channel = channel
    }

    /// Publishes a copy of the delivery to `agentry.dead` (with confirm). The caller acks the original afterwards.
    public func park(_ delivery: AMQPDelivery, reason: String, message: String, queue: String) async throws {
        var properties = delivery.properties
        var headers = properties.headers ?? [:]
        headers[Header.reason] = .string(reason)
        headers[Header.message] = .string(message)
        headers[Header.queue] = .string(queue)
        headers[Header.originalExchange] = .string(delivery.exchange)
        headers[Header.originalRoutingKey] = .string(delivery.routingKey)
        headers[Header.parkedAt] = .string(Timestamp.format(Date()))
        properties.headers = headers
        properties.deliveryMode = 2
        try await channel.publish(AMQPMessage(exchange: Topology.deadExchange, routingKey: delivery.routingKey,
                                              body: delivery.body, properties: properties))
    }
}
