import AMQP
import AgentryBus
import AgentryCore
import Foundation
import Testing

/// `agentry.dead` is bounded, replays go only where Agentry parks from, and an oversized message is parked without
/// being read whole. Each test on a vhost of its own.
@Suite("Dead letter safety")
struct DeadLetterSafetyTests {
    static func withVhost(_ body: @Sendable (AMQPConnection) async throws -> Void) async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let connection = try await TestEnvironment.connect(vhost: vhost)
        do {
            try await body(connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// The arguments of a queue, as `rabbitmqctl list_queues` shows them.
    static func arguments(of queue: String, vhost: String) throws -> String {
        let listing = try TestEnvironment.run("rabbitmqctl", ["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "arguments"])
        return listing.output.split(separator: "\n").first { $0.hasPrefix("\(queue)\t") }.map(String.init) ?? ""
    }

    @Test("agentry.dead has a length limit with reject-publish; apply declares an existing unbounded one again, keeping its messages")
    func deadQueueLimit() async throws {
        try await Self.withVhost { connection in
            let vhost = connection.configuration.virtualHost
            // An installation from before the limit: agentry.dead without arguments, holding parked messages.
            try await connection.declare(ExchangeDeclaration(name: Topology.deadExchange, kind: .fanout))
            try await connection.declare(QueueDeclaration(name: Topology.deadQueue))
            try await connection.bind(BindingDeclaration(source: Topology.deadExchange, destination: .queue(Topology.deadQueue)))
            let channel = try await connection.openChannel()
            for index in 0..<3 {
                try await channel.publish(
                    AMQPMessage(
                        exchange: Topology.deadExchange, routingKey: "old.\(index)", body: Array("parked \(index)".utf8),
                        properties: AMQPProperties(messageID: "old-\(index)")))
            }
            let changes = try await TestEnvironment.topology().apply(on: connection)
            #expect(changes.contains { $0.name == Topology.deadQueue && $0.action == .redeclared(moved: 3) }, "\(changes)")
            let arguments = try Self.arguments(of: Topology.deadQueue, vhost: vhost)
            #expect(arguments.contains("x-overflow") && arguments.contains("reject-publish"), "\(arguments)")
            #expect(arguments.contains("x-max-length"), "\(arguments)")
            #expect(try await connection.queueStatus(Topology.deadQueue).messageCount == 3)
            #expect(try await DeadLetters.list(on: connection).map(\.id).sorted() == ["old-0", "old-1", "old-2"])
            #expect(try await connection.queueExists("\(Topology.deadQueue).redeclaring") == false)
            // A second apply changes nothing.
            let again = try await TestEnvironment.topology().apply(on: connection)
            #expect(again.first { $0.name == Topology.deadQueue }?.action == .unchanged)
        }
    }

    @Test("a full agentry.dead refuses a park (the publisher is told) instead of dropping a message")
    func fullDeadQueueRefuses() async throws {
        try await Self.withVhost { connection in
            var topology = try TestEnvironment.topology()
            // A tiny parking lot, to fill it.
            topology.queues = topology.queues.map { queue in
                guard queue.name == Topology.deadQueue else { return queue }
                var small = queue
                small.arguments["x-max-length"] = .int(2)
                return small
            }
            _ = try await topology.apply(on: connection)
            let dead = DeadLetters(channel: try await connection.openChannel())
            let source = QueueDeclaration(name: "agentry.test-source", durable: false, exclusive: true, autoDelete: false)
            try await connection.declare(source)
            let channel = try await connection.openChannel()
            for index in 0..<3 {
                try await channel.publish(AMQPMessage(exchange: "", routingKey: source.name, body: Array("bad \(index)".utf8)))
            }
            let consumer = try await connection.consume(queue: source.name, prefetch: 10)
            var iterator = consumer.makeAsyncIterator()
            var refused = 0
            for _ in 0..<3 {
                let delivery = try #require(try await iterator.next())
                do {
                    try await dead.park(delivery, reason: "not-json", message: "test", queue: source.name)
                    delivery.ack()
                } catch {
                    #expect("\(error)".contains("agentry.dead refused"), "\(error)")
                    refused += 1
                    delivery.reject(requeue: true)
                }
            }
            await consumer.close()
            #expect(refused == 1)
            #expect(try await connection.queueStatus(Topology.deadQueue).messageCount == 2)
            #expect(try await connection.queueStatus(source.name).messageCount == 1, "the refused message is still in its queue")
        }
    }

    @Test("a replay refuses a parked message addressed to agentry.control, or to anything but agentry.events or an agent's queue")
    func replayRefusesControl() async throws {
        try await Self.withVhost { connection in
            _ = try await TestEnvironment.topology().apply(on: connection)
            // Something listening on the control exchange, as a worker does.
            let control = QueueDeclaration(name: "agentry.control.test", durable: false, exclusive: true, autoDelete: true)
            try await connection.declare(control)
            try await connection.bind(BindingDeclaration(source: Topology.controlExchange, destination: .queue(control.name)))
            // The agent's queue, for the one replay that may go there.
            try await connection.declare(QueueDeclaration(name: "agentry.agent.someone", durable: false, exclusive: true, autoDelete: true))
            let channel = try await connection.openChannel()
            func park(_ id: String, exchange: String, routingKey: String) async throws {
                try await channel.publish(
                    AMQPMessage(
                        exchange: Topology.deadExchange, routingKey: routingKey, body: Array(#"{"command": "sync"}"#.utf8),
                        properties: AMQPProperties(
                            headers: [
                                DeadLetters.Header.reason: "not-json",
                                DeadLetters.Header.originalExchange: .string(exchange),
                                DeadLetters.Header.originalRoutingKey: .string(routingKey),
                            ], messageID: id)))
            }
            try await park("to-control", exchange: Topology.controlExchange, routingKey: "")
            try await park("to-other-queue", exchange: "", routingKey: control.name)
            try await park("to-agent", exchange: "", routingKey: "agentry.agent.someone")
            let report = try await DeadLetters(channel: try await connection.openChannel()).replayReport(on: connection, ids: nil)
            #expect(report.replayed.map(\.id) == ["to-agent"])
            #expect(Set(report.refused.map(\.message.id)) == ["to-control", "to-other-queue"])
            #expect(report.refused.first { $0.message.id == "to-control" }?.reason.contains("agentry.control") == true)
            #expect(try await connection.queueStatus(control.name).messageCount == 0, "nothing reached the control exchange")
            #expect(
                try await DeadLetters.list(on: connection).map(\.id).sorted() == ["to-control", "to-other-queue"], "refused messages stay parked")
        }
    }

    @Test("a message over the consumer's size limit is delivered truncated, its body never held whole, and parked as too-large")
    func oversizedMessageParked() async throws {
        try await Self.withVhost { connection in
            _ = try await TestEnvironment.topology().apply(on: connection)
            let queue = QueueDeclaration(name: "agentry.test-oversized", durable: false, exclusive: true, autoDelete: true)
            try await connection.declare(queue)
            let size = 8 * 1024 * 1024
            let channel = try await connection.openChannel()
            try await channel.publish(
                AMQPMessage(
                    exchange: "", routingKey: queue.name, body: [UInt8](repeating: UInt8(ascii: "x"), count: size),
                    properties: AMQPProperties(messageID: "huge")))
            try await channel.publish(AMQPMessage(exchange: "", routingKey: queue.name, body: Array(#"{"small": true}"#.utf8)))
            let limit = EventWireFormat.defaultMaxBodySize
            let consumer = try await connection.consume(queue: queue.name, prefetch: 10, maxBodySize: limit)
            var iterator = consumer.makeAsyncIterator()
            let huge = try #require(try await iterator.next())
            #expect(huge.isTruncated)
            #expect(huge.bodySize == size)
            #expect(huge.body.count == AMQPDelivery.truncatedPrefix, "only the first bytes are kept: \(huge.body.count)")
            let small = try #require(try await iterator.next())
            #expect(!small.isTruncated && small.body == Array(#"{"small": true}"#.utf8), "the next message on the channel is read whole")
            do throws(EventDecodingError) {
                _ = try huge.decodeEvent(maxBodySize: limit)
                Issue.record("an oversized body is not an event")
            } catch {
                #expect(error.reason == .tooLarge)
                try await DeadLetters(channel: try await connection.openChannel()).park(
                    huge, reason: error.reason.description, message: error.message, queue: queue.name)
            }
            huge.ack()
            small.ack()
            await consumer.close()
            let parked = try #require(try await DeadLetters.list(on: connection).first)
            #expect(parked.reason == "too-large" && parked.truncated && parked.bodySize == size, "\(parked)")
            let report = try await DeadLetters(channel: try await connection.openChannel()).replayReport(on: connection, ids: nil)
            #expect(report.replayed.isEmpty && report.refused.count == 1, "a truncated message is never replayed")
        }
    }
}
