public import AMQP
public import AgentryBus
public import AgentryCore
public import AgentryStore
import Foundation
public import Logging
public import ServiceLifecycle

/// Writes every event published on the bus to `event_log`, once, in batches; records the feedback of `run.feedback`
/// events (``FeedbackEvents``); marks events that no agent handles as unhandled and announces them with
/// `event.unhandled`; parks messages that are not events in `agentry.dead`.
public final class EventLogService: Service, Sendable {
    public struct Options: Sendable {
        /// Largest batch written in one statement. Default: 500.
        public var batchSize: Int = 500
        /// Longest time an event waits for its batch to fill. Default: 50 ms.
        public var maxLatency: Duration = .milliseconds(50)
        /// Largest body accepted; larger messages are parked. Default: 1 MiB.
        public var maxBodySize: Int = EventWireFormat.defaultMaxBodySize
        public init() {}
    }

    let connection: AMQPConnection
    let bus: EventBus
    let store: EventLogStore
    let options: Options
    let logger: Logger

    public init(connection: AMQPConnection, bus: EventBus, store: EventLogStore, options: Options = Options(), logger: Logger) {
        self.connection = connection
        self.bus = bus
        self.store = store
        self.options = options
        self.logger = logger
    }

    public func run() async throws {
        let dead = DeadLetters(channel: try await connection.openChannel(confirms: true))
        let prefetch = UInt16(clamping: options.batchSize * 2)
        let logConsumer = try await connection.consume(queue: Topology.eventLogQueue, prefetch: prefetch, maxBodySize: options.maxBodySize)
        let unhandledConsumer = try await connection.consume(queue: Topology.unhandledQueue, prefetch: prefetch, maxBodySize: options.maxBodySize)
        logger.info(
            "event log service started",
            metadata: ["agentry.batch.size": "\(options.batchSize)", "agentry.batch.latency_ms": "\(options.maxLatency.inMilliseconds)"])
        let batching = BatchingConsumer<Logged>.Options(batchSize: options.batchSize, maxLatency: options.maxLatency)
        let maxBodySize = options.maxBodySize
        let logger = self.logger
        let store = self.store
        let bus = self.bus
        let feedback = FeedbackEvents(store: FeedbackStore(database: store.database, logger: logger), logger: logger)

        let log = BatchingConsumer<Logged>(
            consumer: logConsumer, options: batching, logger: logger,
            prepare: { delivery in
                do {
                    let event = try delivery.decodeEvent(maxBodySize: maxBodySize)
                    return Logged(event: event, delivery: delivery)
                } catch let error as EventDecodingError {
                    logger.warning(
                        "parking a message that is not an event",
                        metadata: [
                            "agentry.dead.reason": "\(error.reason)", "error": "\(error.message)", "amqp.routing_key": "\(delivery.routingKey)",
                        ])
                    do {
                        try await dead.park(delivery, reason: error.reason.description, message: error.message, queue: Topology.eventLogQueue)
                    } catch {
                        // Not parked (agentry.dead full, or the broker gone): the message goes back to its queue, after
                        // a pause so that it does not come straight back.
                        logger.error("cannot park a message that is not an event; it goes back to its queue", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                        throw error
                    }
                    delivery.ack()
                    return nil
                }
            },
            flush: { batch in
                for item in batch { AgentryMetrics.consumed(item.event, by: "event-log") }
                try await Self.insert(batch, store: store, dead: dead, logger: logger)
                try await feedback.record(batch.map(\.event))
            })

        let unhandled = BatchingConsumer<Logged>(
            consumer: unhandledConsumer, options: batching, logger: logger,
            prepare: { delivery in
                // Messages that are not events were parked by the log consumer, which sees every message too.
                guard let event = try? delivery.decodeEvent(maxBodySize: maxBodySize),
                    !EventType.isSystem(event.type)
                else {
                    delivery.ack()
                    return nil
                }
                return Logged(event: event, delivery: delivery)
            },
            flush: { batch in
                let events = batch.map(\.event)
                let toAnnounce = Set(try await store.markUnhandled(events))
                var announced: [EventID] = []
                try await withThrowingTaskGroup(of: EventID.self) { group in
                    for event in events where toAnnounce.contains(event.id) {
                        group.addTask {
                            try await bus.publish(Self.announcement(for: event))
                            return event.id
                        }
                    }
                    for try await id in group { announced.append(id) }
                }
                try await store.markAnnounced(announced)
            })

        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await log.run() }
                group.addTask { try await unhandled.run() }
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            // Stop new deliveries; the batching loops flush what they hold and end with their consumers.
            logConsumer.cancel()
            unhandledConsumer.cancel()
        }
        await logConsumer.close()
        await unhandledConsumer.close()
        logger.info("event log service stopped")
    }

    struct Logged: Sendable {
        let event: Event
        let delivery: AMQPDelivery
    }

    /// Inserts a batch; when the batch as a whole is refused for its data (a payload PostgreSQL cannot store, say),
    /// inserts event by event and parks the ones refused, so one bad event cannot block the log.
    static func insert(_ batch: [Logged], store: EventLogStore, dead: DeadLetters, logger: Logger) async throws {
        do {
            try await store.insert(batch.map(\.event))
        } catch {
            guard batch.count > 1 || isDataError(error) else { throw error }
            for item in batch {
                do {
                    try await store.insert([item.event])
                } catch  where isDataError(error) {
                    logger.warning("parking an event the database refuses", metadata: ["agentry.event.id": "\(item.event.id)", "error": "\(error)"])
                    try await dead.park(item.delivery, reason: "refused-by-database", message: "\(error)", queue: Topology.eventLogQueue)
                }
            }
        }
    }

    private static func isDataError(_ error: any Error) -> Bool {
        // SQLSTATE class 22: data exception (bad JSON escape, value out of range, …).
        (error as? StoreError)?.isDataError == true
    }

    /// The `event.unhandled` announcement for an event no agent listens to.
    public static func announcement(for event: Event) -> Event {
        Event(
            type: "event.unhandled",
            payload: [
                "event_id": .string(event.id.rawValue), "event_type": .string(event.type),
                "priority": .string(event.priority.name), "reason": "no published agent has a trigger matching this event type",
            ],
            priority: event.priority, source: "agentry.event-log",
            correlationID: event.correlationID ?? event.id.rawValue, causationID: event.id.rawValue)
    }
}
