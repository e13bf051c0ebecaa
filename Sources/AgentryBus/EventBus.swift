public import AMQP
public import AgentryCore
import Foundation
public import Logging

/// The event bus: publishes events to `agentry.events` with publisher confirms, and subscribes to event types.
public final class EventBus: Sendable {
    public struct Options: Sendable {
        /// How often a publish is tried when the connection drops before its confirm. Default: 5.
        /// A retried event keeps its id, so the event log still holds it once.
        public var publishAttempts: Int = 5
        /// Largest body accepted when reading events. Default: 1 MiB.
        public var maxBodySize: Int = EventWireFormat.defaultMaxBodySize
        public init() {}
    }

    public let connection: AMQPConnection
    public let options: Options
    let channel: AMQPChannel
    let logger: Logger

    /// Opens a confirm channel on `connection` for publishing.
    public init(connection: AMQPConnection, options: Options = Options(), logger: Logger) async throws {
        self.connection = connection
        self.options = options
        self.logger = logger
        self.channel = try await connection.openChannel(confirms: true)
    }

    /// The AMQP message for an event, per the wire format of docs/design.md.
    public static func message(for event: Event) -> AMQPMessage {
        AMQPMessage(
            exchange: Topology.eventsExchange, routingKey: event.type, body: EventWireFormat.encode(event),
            properties: AMQPProperties(
                contentType: "application/json", deliveryMode: 2, priority: event.priority.amqpPriority,
                correlationID: event.correlationID, messageID: event.id.rawValue,
                timestamp: UInt64(max(0, event.timestamp.timeIntervalSince1970)), type: event.type, appID: "agentry"))
    }

    /// The AMQP message for an event sent straight to one queue through the default exchange (a retry, a requeue,
    /// a replay to one agent), bypassing routing.
    public static func message(for event: Event, toQueue queue: String) -> AMQPMessage {
        var message = message(for: event)
        message.exchange = ""
        message.routingKey = queue
        return message
    }

    /// Publishes an event and waits for the broker's confirm. Retries (same event id) when the connection drops
    /// before the confirm; throws when the broker refuses it or the attempts run out.
    public func publish(_ event: Event) async throws {
        if let problem = EventType.problem(with: event.type) { throw BusError("cannot publish: \(problem)") }
        try await publish(Self.message(for: event), of: event)
    }

    private func publish(_ message: AMQPMessage, of event: Event) async throws {
        var attempt = 1
        while true {
            do {
                try await channel.publish(message)
                AgentryMetrics.published(event)
                return
            } catch let error as AMQPError where error.replyCode == 404 {
                throw BusError(
                    "cannot publish \(event.type): the exchange \(message.exchange) does not exist on this broker; run `agentry topology apply` first (\(error))"
                )
            } catch let error as AMQPError where error.isRetriable && attempt < options.publishAttempts {
                logger.debug(
                    "publish not confirmed; publishing again",
                    metadata: [
                        "agentry.event.id": "\(event.id)", "agentry.attempt": "\(attempt)", "error": "\(error)",
                    ])
                attempt += 1
            }
        }
    }

    /// Publishes an event straight to one queue (a delegated task to its subagent, a run's resume, an invocation),
    /// with `headers`, and waits for the broker's confirm. Mandatory: a queue that does not exist fails the publish
    /// instead of losing the event.
    public func publish(_ event: Event, toQueue queue: String, headers: [String: AMQPValue]) async throws {
        var message = Self.message(for: event, toQueue: queue)
        message.properties.headers = headers
        message.mandatory = true
        try await publish(message, of: event)
    }

    /// Publishes an event that its publisher has already written to `event_log` (a worker's `agent.task.started` and
    /// `agent.task.completed`, logged with the run records they announce): straight to `agentry.route`, past the
    /// fanout and the event log's queue, which would only log it a second time. Agents and subscriptions receive it
    /// as any other event; a queue bound to `agentry.events` does not.
    public func publishLogged(_ event: Event) async throws {
        var message = Self.message(for: event)
        message.exchange = Topology.routeExchange
        try await publish(message, of: event)
    }

    /// Subscribes to events whose type matches a topic pattern (`*` one word, `#` any words), through an exclusive
    /// queue of its own that lives as long as the subscription (it is declared again after a reconnect).
    public func subscribe(to pattern: String, prefetch: UInt16 = 100) async throws -> EventSubscription {
        if let problem = EventType.patternProblem(with: pattern) { throw BusError("cannot subscribe: \(problem)") }
        let queue = QueueDeclaration(
            name: "agentry.subscription.\(UUID().uuidString.lowercased())", durable: false, exclusive: true,
            autoDelete: true, arguments: ["x-max-priority": .int(Topology.maxPriority)])
        try await connection.declare(queue)
        try await connection.bind(BindingDeclaration(source: Topology.routeExchange, destination: .queue(queue.name), routingKey: pattern))
        let consumer = try await connection.consume(queue: queue.name, prefetch: prefetch, maxBodySize: options.maxBodySize)
        return EventSubscription(consumer: consumer, maxBodySize: options.maxBodySize, logger: logger)
    }

    /// Declares an agent's queue and binds it to each pattern (idempotent).
    public func declareAgentQueue(_ agentID: String, patterns: [String]) async throws {
        try await connection.declare(Topology.agentQueue(agentID))
        for pattern in patterns {
            try await connection.bind(Topology.agentBinding(agentID, pattern: pattern))
        }
    }

    /// Removes one pattern's binding from an agent's queue.
    public func unbindAgentQueue(_ agentID: String, pattern: String) async throws {
        try await connection.unbind(Topology.agentBinding(agentID, pattern: pattern))
    }
}

/// An event received from the bus, to acknowledge once handled.
public struct ReceivedEvent: Sendable {
    public let event: Event
    public let delivery: AMQPDelivery

    public func ack() { delivery.ack() }
}

/// Events matching a subscription's pattern. A message that is not an event is logged and rejected (the event log
/// service parks such messages in `agentry.dead`).
public struct EventSubscription: AsyncSequence, Sendable {
    public typealias Element = ReceivedEvent
    let consumer: AMQPConsumer
    let maxBodySize: Int
    let logger: Logger

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AMQPConsumer.AsyncIterator
        let maxBodySize: Int
        let logger: Logger

        public mutating func next() async throws -> ReceivedEvent? {
            while let delivery = try await base.next() {
                do {
                    let event = try delivery.decodeEvent(maxBodySize: maxBodySize)
                    return ReceivedEvent(event: event, delivery: delivery)
                } catch {
                    logger.warning(
                        "skipping a message that is not an event", metadata: ["error": "\(error)", "amqp.routing_key": "\(delivery.routingKey)"])
                    delivery.reject(requeue: false)
                }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: consumer.makeAsyncIterator(), maxBodySize: maxBodySize, logger: logger)
    }

    /// Ends the subscription.
    public func cancel() { consumer.cancel() }
}

extension AMQPDelivery {
    /// What the wire format needs from the AMQP envelope.
    public var eventEnvelope: EventWireFormat.Envelope {
        EventWireFormat.Envelope(
            routingKey: routingKey, messageID: properties.messageID, typeProperty: properties.type,
            amqpPriority: properties.priority, amqpTimestamp: properties.timestamp,
            correlationID: properties.correlationID)
    }
}

/// A bus operation that cannot be done, and why.
public struct BusError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
