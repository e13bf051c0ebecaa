import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Testing

@Suite("Recovery after lost connections")
struct ReconnectTests {
    @Test("a consumer and a publisher carry on, losing nothing, after rabbitmqctl close_all_connections mid-stream")
    func closeAllConnectionsMidStream() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let publisherConnection = try await TestEnvironment.connect(vhost: vhost)
        let consumerConnection = try await TestEnvironment.connect(vhost: vhost)
        defer {
            Task {
                await publisherConnection.close()
                await consumerConnection.close()
            }
        }
        _ = try await TestEnvironment.topology().apply(on: publisherConnection)
        let bus = try await EventBus(connection: publisherConnection, logger: TestEnvironment.logger)
        try await bus.declareAgentQueue("reconnect", patterns: ["test.reconnect.#"])

        let total = 3000
        let received = Collector<EventID>()
        let consumer = try await consumerConnection.consume(queue: Topology.agentQueue("reconnect").name, prefetch: 50)
        let consuming = Task {
            for try await delivery in consumer {
                let event = try EventWireFormat.decode(body: delivery.body, envelope: delivery.eventEnvelope)
                await received.append(event.id)
                delivery.ack()
            }
        }
        var published: [EventID] = []
        for i in 0..<total {
            let event = Event(type: "test.reconnect.tick", payload: ["n": .int(Int64(i))], priority: .normal)
            if i == total / 3 {
                try TestEnvironment.rabbitmqctl("close_all_connections", "-p", vhost, "agentry test: connection recovery")
            }
            try await bus.publish(event)  // retried across the reconnect; throws if it cannot be confirmed
            published.append(event.id)
        }
        let complete = try await TestEnvironment.eventually(timeout: .seconds(30)) {
            Set(await received.values).isSuperset(of: published)
        }
        consuming.cancel()
        #expect(complete, "every published event reaches the consumer")
        #expect(Set(await received.values).count == total)
        #expect(publisherConnection.reconnectCount >= 1)
        #expect(consumerConnection.reconnectCount >= 1)
        #expect(publisherConnection.isConnected && consumerConnection.isConnected)
    }
}

@Suite("Publishes in flight when the connection drops")
struct InFlightPublishTests {
    @Test("every publish waiting for a confirm either succeeds or fails with a retriable error; none is forgotten")
    func inFlightPublishesResolve() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let connection = try await TestEnvironment.connect(vhost: vhost)
        defer { Task { await connection.close() } }
        let queue = "agentry.test.inflight"
        try await connection.declare(QueueDeclaration(name: queue, durable: true, arguments: ["x-max-priority": 4]))
        let channel = try await connection.openChannel(confirms: true)
        let body = [UInt8](repeating: 7, count: 256)
        // Cut the connection from outside while publishes are in flight, and keep publishing (500 at a time)
        // until the client has reconnected.
        let killer = Task.detached {
            try TestEnvironment.run("rabbitmqctl", ["close_all_connections", "-p", vhost, "agentry test: in-flight publishes"])
        }
        var outcomes: [Result<Void, AMQPError>] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while connection.reconnectCount == 0 && ContinuousClock.now < deadline {
            let batch = try await withThrowingTaskGroup(of: Result<Void, AMQPError>.self) { group in
                for _ in 0..<500 {
                    group.addTask {
                        do {
                            try await channel.publish(
                                AMQPMessage(exchange: "", routingKey: queue, body: body, properties: AMQPProperties(deliveryMode: 2)))
                            return .success(())
                        } catch let error as AMQPError {
                            return .failure(error)
                        }
                    }
                }
                var all: [Result<Void, AMQPError>] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            outcomes += batch
        }
        _ = try await killer.value
        let count = outcomes.count
        #expect(connection.reconnectCount >= 1)
        #expect(count > 0 && count % 500 == 0, "every publish returned")
        let failures = outcomes.compactMap { if case .failure(let e) = $0 { return e } else { return nil } }
        let confirmed = outcomes.count - failures.count
        let allRetriable = failures.allSatisfy { $0.isRetriable }
        #expect(allRetriable, "failures say the message may be lost: \(Set(failures.map { "\($0.code)" }))")
        // Confirmed messages are in the queue (those that failed may or may not be).
        let reconnected = try await TestEnvironment.eventually { connection.isConnected }
        #expect(reconnected)
        let depth = try await connection.queueStatus(queue).messageCount
        #expect(depth >= UInt32(confirmed))
        #expect(depth <= UInt32(count))
    }
}

@Suite("Event log across a lost connection")
struct EventLogRedeliveryTests {
    @Test("events flowing while the log's connection is cut are all logged, each exactly once")
    func loggedOnceAcrossRedelivery() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        try await withEventLog(vhost: vhost) { bus, store, _ in
            let type = "test.redelivery.\(TestEnvironment.uniqueName())"
            var ids: [EventID] = []
            for i in 0..<3000 {
                if i == 1500 {
                    try TestEnvironment.rabbitmqctl("close_all_connections", "-p", vhost, "agentry test: event log redelivery")
                }
                let event = Event(type: type, payload: ["n": .int(Int64(i))])
                try await bus.publish(event)
                ids.append(event.id)
            }
            let all = try await TestEnvironment.eventually(timeout: .seconds(30)) {
                try await store.count(type: type) >= ids.count
            }
            #expect(all)
            #expect(
                try await TestEnvironment.waitUntilSettled(Topology.eventLogQueue, vhost: vhost), "the event log has taken and written everything")
            #expect(try await store.count(type: type) == ids.count, "one row per event")
            #expect(try await store.count(eventID: ids[1499]) == 1)
        }
    }
}
