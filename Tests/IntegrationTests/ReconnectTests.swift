import AMQP
import AgentryBus
import AgentryRuntime
import AgentryCore
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
        defer { Task { await publisherConnection.close(); await consumerConnection.close() } }
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
