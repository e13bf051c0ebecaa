import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import Foundation
import Testing

@Suite("AMQP client against RabbitMQ")
struct AMQPClientTests {
    @Test("a publish round trip keeps the body and every property")
    func roundTripWithAllProperties() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.roundtrip.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false, autoDelete: false, arguments: ["x-max-priority": 4]))
        defer { Task { try? await connection.deleteQueue(queue) } }

        let headers: AMQPTable = [
            "text": "héllo", "count": .int(42), "flag": true, "ratio": .double(0.5),
            "nested": .table(["inner": "x"]), "list": .array([.int(1), "two"]),
        ]
        let properties = AMQPProperties(
            contentType: "application/json", contentEncoding: "utf-8", headers: headers, deliveryMode: 2, priority: 3,
            correlationID: "corr-1", replyTo: "reply.queue", expiration: "600000", messageID: "msg-1",
            timestamp: 1_700_000_000, type: "test.type", userID: "guest", appID: "agentry-tests")
        let body = Array(#"{"hello":"world"}"#.utf8)
        let channel = try await connection.openChannel(confirms: true)
        try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: body, properties: properties))

        let consumer = try await connection.consume(queue: queue, prefetch: 10)
        var iterator = consumer.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        delivery.ack()
        #expect(delivery.body == body)
        #expect(delivery.routingKey == queue)
        #expect(delivery.exchange == "")
        #expect(!delivery.redelivered)
        #expect(delivery.properties == properties)
        #expect(delivery.properties.isPersistent)
        await consumer.close()
    }

    @Test(
        "a publish the broker does not confirm (a memory alarm blocks publishers) fails at its confirm timeout, retriable, saying why",
        .timeLimit(.minutes(1)))
    func confirmTimeout() async throws {
        let connection = try await TestEnvironment.connect { $0.confirmTimeout = .seconds(1) }
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.blocked.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false, autoDelete: false))
        defer { Task { try? await connection.deleteQueue(queue) } }
        let channel = try await connection.openChannel(confirms: true)
        try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: Array("before".utf8)))
        let (failure, alarmSeen) = try await TestEnvironment.withMemoryAlarm { () async throws -> AMQPError? in
            do {
                try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: Array("held".utf8)))
                return nil
            } catch let error as AMQPError {
                return error
            }
        }
        #expect(alarmSeen)
        let error = try #require(failure, "a publish under the alarm was confirmed")
        #expect(error.code == .timeout, "\(error)")
        #expect(error.isRetriable)
        #expect(error.message.contains("blocked"), "\(error.message)")
    }

    @Test("every publish under confirms is confirmed, with many in flight")
    func confirmsForEveryPublish() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.confirms.")
        try await connection.declare(QueueDeclaration(name: queue, durable: true, arguments: ["x-max-priority": 4]))
        defer { Task { try? await connection.deleteQueue(queue) } }
        let channel = try await connection.openChannel(confirms: true)
        let count = 2000
        let confirmed = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<count {
                group.addTask {
                    try await channel.publish(
                        AMQPMessage(
                            exchange: "", routingKey: queue, body: Array("m\(i)".utf8),
                            properties: AMQPProperties(deliveryMode: 2, priority: UInt8(i % 4 + 1))))
                    return 1
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(confirmed == count)
        let status = try await connection.queueStatus(queue)
        #expect(status.messageCount == UInt32(count))
        #expect(status.consumerCount == 0)
    }

    @Test("a CRITICAL event published after 200 LOW ones is delivered first")
    func priorityOrder() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        _ = try await TestEnvironment.topology().apply(on: connection)
        let bus = try await EventBus(connection: connection, logger: TestEnvironment.logger)
        let agent = TestEnvironment.uniqueName("prio-")
        let type = "test.priority.\(agent)"
        try await bus.declareAgentQueue(agent, patterns: [type])
        defer { Task { try? await connection.deleteQueue(Topology.agentQueue(agent).name) } }

        for i in 0..<200 {
            try await bus.publish(Event(type: type, payload: ["n": .int(Int64(i))], priority: .low))
        }
        let critical = Event(type: type, payload: ["urgent": true], priority: .critical)
        try await bus.publish(critical)
        let status = try await connection.queueStatus(Topology.agentQueue(agent).name)
        #expect(status.messageCount == 201)

        let consumer = try await connection.consume(queue: Topology.agentQueue(agent).name, prefetch: 1)
        var iterator = consumer.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        let event = try EventWireFormat.decode(body: first.body, envelope: first.eventEnvelope)
        #expect(event.id == critical.id)
        #expect(event.priority == .critical)
        #expect(first.properties.priority == 4)
        first.ack()
        let second = try #require(try await iterator.next())
        #expect(try EventWireFormat.decode(body: second.body, envelope: second.eventEnvelope).priority == .low)
        second.ack()
        await consumer.close()
    }

    @Test("broker errors carry the reply code and text, and the connection stays usable")
    func brokerErrors() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.conflict.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false, arguments: ["x-max-priority": 4]))
        defer { Task { try? await connection.deleteQueue(queue) } }

        let conflict = await #expect(throws: AMQPError.self) {
            try await connection.declare(QueueDeclaration(name: queue, durable: false, arguments: ["x-max-priority": 10]))
        }
        #expect(conflict?.replyCode == 406)
        #expect(conflict?.replyText?.contains("x-max-priority") == true)
        #expect(conflict?.code == .channelClosedByBroker)

        let missing = await #expect(throws: AMQPError.self) {
            try await connection.queueStatus(TestEnvironment.uniqueName("agentry.test.missing."))
        }
        #expect(missing?.replyCode == 404)

        let channel = try await connection.openChannel(confirms: true)
        let noExchange = await #expect(throws: AMQPError.self) {
            try await channel.publish(AMQPMessage(exchange: TestEnvironment.uniqueName("agentry.test.none."), routingKey: "x", body: [1]))
        }
        #expect(noExchange?.replyCode == 404)

        // The same connection and channel still work.
        try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: [1]))
        #expect(try await connection.queueStatus(queue).messageCount == 1)

        let unroutable = await #expect(throws: AMQPError.self) {
            try await channel.publish(
                AMQPMessage(
                    exchange: "", routingKey: TestEnvironment.uniqueName("agentry.test.nobody."), body: [1],
                    properties: AMQPProperties(messageID: "lost-1"), mandatory: true))
        }
        #expect(unroutable?.code == .unroutable)
        #expect(unroutable?.replyCode == 312)
    }

    @Test("wrong credentials fail with a clear authentication error")
    func wrongPassword() async throws {
        var amqp = TestEnvironment.configuration.amqp
        amqp.password = "definitely-wrong"
        let connection = AMQPConnection(configuration: amqp, logger: TestEnvironment.logger)
        let error = await #expect(throws: AMQPError.self) { try await connection.connect() }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.description.contains(amqp.user) == true)
    }

    @Test("a broker that does not answer fails connect with the endpoint named; later calls fail instead of waiting")
    func unreachableBroker() async throws {
        var amqp = TestEnvironment.configuration.amqp
        amqp.port = 5999
        let connection = AMQPConnection(configuration: amqp, logger: TestEnvironment.logger)
        let error = await #expect(throws: AMQPError.self) { try await connection.connect() }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains(":5999") == true)
        let later = await #expect(throws: AMQPError.self) { try await connection.declare(QueueDeclaration(name: "agentry.test.never")) }
        #expect(later?.code == .closed)
        await connection.close()
    }

    @Test("nack requeues, reject drops, ack with multiple settles the rest")
    func settlements() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.settle.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false))
        defer { Task { try? await connection.deleteQueue(queue) } }
        let channel = try await connection.openChannel()
        for name in ["a", "b", "c", "d"] {
            try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: Array(name.utf8)))
        }
        let consumer = try await connection.consume(queue: queue, prefetch: 10)
        var iterator = consumer.makeAsyncIterator()
        var seen: [String: AMQPDelivery] = [:]
        for _ in 0..<4 {
            let d = try #require(try await iterator.next())
            seen[String(decoding: d.body, as: UTF8.self)] = d
        }
        seen["a"]!.reject(requeue: false)
        seen["b"]!.nack(requeue: true)
        let again = try #require(try await iterator.next())
        #expect(String(decoding: again.body, as: UTF8.self) == "b")
        #expect(again.redelivered)
        again.ack(multiple: true)  // settles b (again), c and d
        #expect(try await TestEnvironment.eventually { try await connection.queueStatus(queue).messageCount == 0 })
        await consumer.close()
        // Nothing is left unacknowledged: once the consumer's channel is closed, nothing comes back.
        #expect(try await TestEnvironment.waitUntilSettled(queue))
    }

    @Test("acks posted together travel as multiple-acks, acks around a gap one by one, and every delivery is settled")
    func coalescedAcks() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        let queue = TestEnvironment.uniqueName("agentry.test.acks.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false))
        defer { Task { try? await connection.deleteQueue(queue) } }
        let channel = try await connection.openChannel(confirms: true)
        let count = 400
        for index in 0..<count {
            try await channel.publish(AMQPMessage(exchange: "", routingKey: queue, body: Array(String(index).utf8)))
        }
        let consumer = try await connection.consume(queue: queue, prefetch: UInt16(count))
        var iterator = consumer.makeAsyncIterator()
        var deliveries: [AMQPDelivery] = []
        for _ in 0..<count { deliveries.append(try #require(try await iterator.next())) }
        let before = connection.acknowledgements

        // The first half in order, as a busy worker acks a group of runs whose outcomes were written together.
        for delivery in deliveries[0..<(count / 2)] { delivery.ack() }
        #expect(try await TestEnvironment.eventually { connection.acknowledgements.deliveries - before.deliveries == count / 2 })
        let firstHalf = connection.acknowledgements
        #expect(
            firstHalf.frames - before.frames < count / 2, "acks in order should share frames: \(firstHalf.frames - before.frames) for \(count / 2)")

        // The second half with its first delivery held back: the others cannot be covered by a multiple-ack (it
        // would ack the held one too), so they go one by one; then the held one.
        let rest = deliveries[(count / 2)...]
        for delivery in rest.dropFirst().reversed() { delivery.ack() }
        #expect(try await TestEnvironment.eventually { connection.acknowledgements.deliveries - before.deliveries == count - 1 })
        #expect(connection.acknowledgements.frames - firstHalf.frames == count / 2 - 1)
        rest.first!.ack()
        #expect(try await TestEnvironment.eventually { connection.acknowledgements.deliveries - before.deliveries == count })

        // Nothing is left unacknowledged: once the consumer's channel is closed, nothing comes back.
        await consumer.close()
        #expect(try await TestEnvironment.waitUntilSettled(queue))
    }
}

@Suite("AMQP heartbeats")
struct HeartbeatTests {
    @Test("heartbeats keep an idle connection alive past twice the heartbeat interval")
    func idleConnectionSurvives() async throws {
        let connection = try await TestEnvironment.connect { $0.heartbeat = 1 }
        defer { Task { await connection.close() } }
        // RabbitMQ drops a connection that misses two heartbeats; idle for 4 intervals, it must still be the same one.
        try await Task.sleep(for: .seconds(4))
        #expect(connection.isConnected)
        #expect(connection.reconnectCount == 0)
        let queue = TestEnvironment.uniqueName("agentry.test.heartbeat.")
        try await connection.declare(QueueDeclaration(name: queue, durable: false, autoDelete: true))
        #expect(try await connection.queueExists(queue))
        try await connection.deleteQueue(queue)
    }
}

@Suite("Event bus subscriptions")
struct SubscriptionTests {
    @Test("a subscription receives exactly the event types its pattern matches, with * for one word and # for any")
    func wildcardSubscriptions() async throws {
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        _ = try await TestEnvironment.topology().apply(on: connection)
        let bus = try await EventBus(connection: connection, logger: TestEnvironment.logger)
        let tag = TestEnvironment.uniqueName("sub")
        let oneWord = try await bus.subscribe(to: "test.\(tag).*")
        let anyWords = try await bus.subscribe(to: "test.\(tag).#")
        let events = [
            Event(type: "test.\(tag).a", payload: ["n": 1]),
            Event(type: "test.\(tag).a.b", payload: ["n": 2]),
            Event(type: "test.\(tag)", payload: ["n": 3]),
            Event(type: "test.other.a", payload: ["n": 4]),
        ]
        for event in events { try await bus.publish(event) }
        let end = Event(type: "test.\(tag).end", payload: [:])
        try await bus.publish(end)

        func collect(_ subscription: EventSubscription) async throws -> [EventID] {
            var ids: [EventID] = []
            for try await received in subscription {
                received.ack()
                if received.event.id == end.id { break }
                ids.append(received.event.id)
            }
            subscription.cancel()
            return ids
        }
        #expect(try await collect(oneWord) == [events[0].id])
        #expect(try await collect(anyWords) == [events[0].id, events[1].id, events[2].id])
        await #expect(throws: BusError.self) { try await bus.subscribe(to: "test.a*") }
    }

    @Test("publishing before the topology exists says to apply it")
    func publishWithoutTopology() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let connection = try await TestEnvironment.connect(vhost: vhost)
        defer { Task { await connection.close() } }
        let bus = try await EventBus(connection: connection, logger: TestEnvironment.logger)
        let error = await #expect(throws: BusError.self) { try await bus.publish(Event(type: "test.nowhere")) }
        #expect(error?.message.contains("agentry topology apply") == true)
    }
}
