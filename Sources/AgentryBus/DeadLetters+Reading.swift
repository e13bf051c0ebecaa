public import AMQP
import Foundation
import Synchronization

/// Reading `agentry.dead`: its messages, their counts by reason, one message whole.
///
/// RabbitMQ offers no way to look into a queue but to consume it: a reading takes the messages one after the other
/// without acknowledging them, and they go back to the queue, in their order, when the reading's consumer closes.
extension DeadLetters {
    /// Reads up to `limit` parked messages without removing them (they go back to the queue, in order).
    public static func list(on connection: AMQPConnection, limit: Int = 100) async throws -> [ParkedMessage] {
        try await visit(on: connection, limit: limit) { _ in false }
    }

    /// What one reading of the whole of `agentry.dead` found.
    public struct Survey: Sendable {
        /// The messages of the reason asked for (every one when none was), up to the limit, in queue order.
        public var messages: [ParkedMessage] = []
        /// How many messages each reason has, over the whole queue (a message without a reason header counts under "").
        public var reasons: [String: Int] = [:]
        /// How many messages were read: the whole queue.
        public var total = 0

        /// The reasons by count, the largest first (then by name).
        public var reasonsByCount: [(reason: String, count: Int)] {
            reasons.map { (reason: $0.key, count: $0.value) }.sorted { ($1.count, $0.reason) < ($0.count, $1.reason) }
        }
    }

    /// Reads every parked message once, leaving them parked: their counts by reason, and the newest `limit` messages
    /// of `reason` (of any reason when nil), newest first.
    public static func survey(on connection: AMQPConnection, reason: String? = nil, limit: Int = 100) async throws -> Survey {
        var survey = Survey()
        _ = try await visit(on: connection, limit: Int.max) { delivery in
            let parked = ParkedMessage(delivery)
            survey.total += 1
            survey.reasons[parked.reason, default: 0] += 1
            if reason == nil || reason == parked.reason, limit > 0 {
                // The newest `limit`: the queue is read oldest first, so the ones before them make way.
                if survey.messages.count == limit { survey.messages.removeFirst() }
                survey.messages.append(parked)
            }
            return false
        }
        survey.messages.reverse()
        return survey
    }

    /// A parked message with its whole body (as it was parked: a body that was over the size limit has only its first
    /// bytes) and its headers.
    public struct Found: Sendable {
        public var message: ParkedMessage
        public var body: [UInt8]
        public var headers: AMQPTable
    }

    /// The first parked message with this id, or nil when none is parked.
    public static func find(on connection: AMQPConnection, id: String) async throws -> Found? {
        var found: Found?
        _ = try await visit(on: connection, limit: Int.max) { delivery in
            let parked = ParkedMessage(delivery)
            if found == nil, parked.id == id { found = Found(message: parked, body: delivery.body, headers: delivery.properties.headers ?? [:]) }
            return false
        }
        return found
    }

    /// How long a reading waits for the next message before it takes the queue as read: should someone else take
    /// messages meanwhile (another reading, a replay), fewer than counted arrive.
    static let readingIdleLimit: Duration = .seconds(2)

    /// Reads the messages of `agentry.dead` once: `take` says, per message, whether to remove it (ack) or leave it
    /// (it goes back to the queue when the reading's consumer closes). A `take` that throws ends the reading, and
    /// that message and the rest stay parked.
    static func visit(
        on connection: AMQPConnection, limit: Int,
        _ take: (AMQPDelivery) async throws -> Bool
    ) async throws -> [ParkedMessage] {
        let waiting = Int(try await connection.queueStatus(Topology.deadQueue).messageCount)
        let count = min(waiting, limit)
        guard count > 0 else { return [] }
        let consumer = try await connection.consume(queue: Topology.deadQueue, prefetch: UInt16(clamping: min(count, 1000)))
        // Since when the reading waits for a message; nil while `take` works on one (a replay waits for the broker's
        // confirm, and must not lose its consumer meanwhile).
        let waitingSince = Mutex<ContinuousClock.Instant?>(ContinuousClock.now)
        let watchdog = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(250))
                if let since = waitingSince.withLock({ $0 }), ContinuousClock.now - since > readingIdleLimit {
                    await consumer.close()
                    return
                }
            }
        }
        defer { watchdog.cancel() }
        var seen: [ParkedMessage] = []
        do {
            var iterator = consumer.makeAsyncIterator()
            while seen.count < count, let delivery = try await iterator.next() {
                waitingSince.withLock { $0 = nil }
                seen.append(ParkedMessage(delivery))
                if try await take(delivery) { delivery.ack() }
                waitingSince.withLock { $0 = .now }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        return seen
    }
}
