import AMQP
import AgentryRuntime
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// A list of broker URLs (the nodes of a cluster): connections use the first that answers and move to another when
/// theirs goes away. One real broker stands behind TCP forwarders, each forwarder a "node".
@Suite("Failover across a list of broker endpoints")
struct FailoverTests {
    /// The test broker's configuration on `vhost`, with these endpoints.
    static func configuration(_ endpoints: [AMQPConfiguration.Endpoint], vhost: String? = nil) -> AMQPConfiguration {
        var amqp = TestEnvironment.configuration.amqp
        amqp.endpoints = endpoints
        if let vhost { amqp.virtualHost = vhost }
        amqp.options.connectionName = "agentry failover test"
        return amqp
    }

    /// A loopback port nothing listens on: bound, then closed.
    static func closedPort() async throws -> AMQPConfiguration.Endpoint {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return AMQPConfiguration.Endpoint(host: "127.0.0.1", port: port)
    }

    static var broker: AMQPConfiguration.Endpoint { TestEnvironment.configuration.amqp.endpoints[0] }

    @Test("with a closed port first in the list, the client connects to the next, publishes with confirms and consumes")
    func firstEndpointDown() async throws {
        let closed = try await Self.closedPort()
        let connection = AMQPConnection(configuration: Self.configuration([closed, Self.broker]), logger: TestEnvironment.logger)
        try await connection.connect()  // without keepTrying: one round over the list
        defer { Task { await connection.close() } }
        #expect(connection.connectedEndpoint == Self.broker)

        let queue = TestEnvironment.uniqueName("agentry.test.failover.first.")
        try await connection.declare(QueueDeclaration(name: queue, durable: true, arguments: ["x-max-priority": 4]))
        defer { Task { try? await connection.deleteQueue(queue) } }
        let channel = try await connection.openChannel(confirms: true)
        try await channel.publish(
            AMQPMessage(exchange: "", routingKey: queue, body: Array("hello".utf8), properties: AMQPProperties(deliveryMode: 2)))
        #expect(connection.publishingEndpoint == Self.broker)

        let consumer = try await connection.consume(queue: queue, prefetch: 10)
        var iterator = consumer.makeAsyncIterator()
        let delivery = try #require(try await iterator.next())
        delivery.ack()
        #expect(delivery.body == Array("hello".utf8))
        await consumer.close()
    }

    @Test("when no endpoint answers, connect fails once, naming every endpoint")
    func noEndpoint() async throws {
        let first = try await Self.closedPort()
        let second = try await Self.closedPort()
        let connection = AMQPConnection(configuration: Self.configuration([first, second]), logger: TestEnvironment.logger)
        let error = await #expect(throws: AMQPError.self) { try await connection.connect() }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("\(first)") == true && error?.description.contains("\(second)") == true, "\(String(describing: error))")
        #expect(connection.connectedEndpoint == nil)
        await connection.close()
    }

    @Test(
        "the node a consumer and a publisher are on goes away: both move to the next, the consumer keeps receiving and later publishes are confirmed",
        .timeLimit(.minutes(2)))
    func failoverUnderLoad() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let node1 = try await TCPForwarder.start(to: Self.broker.host, port: Self.broker.port)
        let node2 = try await TCPForwarder.start(to: Self.broker.host, port: Self.broker.port)
        defer {
            Task {
                await node1.stop()
                await node2.stop()
            }
        }
        let logs = LogCapture()
        let connection = AMQPConnection(
            configuration: Self.configuration([node1.endpoint, node2.endpoint], vhost: vhost), logger: logs.logger(level: .info))
        try await connection.connect(keepTrying: true)
        defer { Task { await connection.close() } }

        let queue = "agentry.test.failover"
        try await connection.declare(QueueDeclaration(name: queue, durable: true, arguments: ["x-max-priority": 4]))
        let received = Collector<String>()
        let consumer = try await connection.consume(queue: queue, prefetch: 20)
        let consuming = Task {
            for try await delivery in consumer {
                await received.append(String(decoding: delivery.body, as: UTF8.self))
                delivery.ack()
            }
        }
        defer { consuming.cancel() }
        let channel = try await connection.openChannel(confirms: true)
        func publish(_ bodies: [String]) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, body) in bodies.enumerated() {
                    group.addTask {
                        try await channel.publish(
                            AMQPMessage(
                                exchange: "", routingKey: queue, body: Array(body.utf8),
                                properties: AMQPProperties(deliveryMode: 2, priority: UInt8(i % 4 + 1))))
                    }
                }
                try await group.waitForAll()
            }
        }

        let before = (0..<200).map { "before-\($0)" }
        try await publish(before)
        #expect(try await TestEnvironment.eventually { Set(await received.values).isSuperset(of: before) }, "delivered before the failover")
        #expect(connection.connectedEndpoint == node1.endpoint)
        #expect(connection.publishingEndpoint == node1.endpoint)

        await node1.stop()
        let moved = try await TestEnvironment.eventually(timeout: .seconds(20)) {
            connection.connectedEndpoint == node2.endpoint && connection.publishingEndpoint == node2.endpoint
        }
        #expect(
            moved,
            "both connections on node 2: \(String(describing: connection.connectedEndpoint)), \(String(describing: connection.publishingEndpoint))")
        #expect(node2.openConnections == 2)
        let restored = logs.entries("AMQP connection restored").map { $0.metadata["amqp.server"] }
        #expect(restored.count == 2 && restored.allSatisfy { $0 == "\(node2.endpoint)" }, "the log names the new node: \(restored)")
        #expect(connection.reconnectCount >= 2, "the consuming and the publishing connection each reconnected")

        let after = (0..<200).map { "after-\($0)" }
        try await publish(after)  // every one confirmed, through node 2
        let all = try await TestEnvironment.eventually(timeout: .seconds(20)) { Set(await received.values).isSuperset(of: after) }
        #expect(all, "the same consumer receives what is published after the failover")
        #expect(try await TestEnvironment.waitUntilSettled(queue, vhost: vhost), "nothing left in the queue or unacknowledged")
    }

    @Test("a lost connection reconnects to the next endpoint of the list, not its own, and wraps around")
    func reconnectsToTheNext() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let node1 = try await TCPForwarder.start(to: Self.broker.host, port: Self.broker.port)
        let node2 = try await TCPForwarder.start(to: Self.broker.host, port: Self.broker.port)
        defer {
            Task {
                await node1.stop()
                await node2.stop()
            }
        }
        var amqp = Self.configuration([node1.endpoint, node2.endpoint], vhost: vhost)
        amqp.options.separatePublishing = false
        let connection = AMQPConnection(configuration: amqp, logger: TestEnvironment.logger)
        try await connection.connect(keepTrying: true)
        defer { Task { await connection.close() } }
        let queue = "agentry.test.rotation"
        try await connection.declare(QueueDeclaration(name: queue, durable: true))
        #expect(connection.connectedEndpoint == node1.endpoint)

        // Both "nodes" stay up: the broker closes the connection, and the client still moves on.
        try TestEnvironment.rabbitmqctl("close_all_connections", "-p", vhost, "agentry test: rotation")
        #expect(try await TestEnvironment.eventually { connection.connectedEndpoint == node2.endpoint })
        #expect(try await connection.queueExists(queue), "the declared queue is there through the new node")
        try TestEnvironment.rabbitmqctl("close_all_connections", "-p", vhost, "agentry test: rotation")
        #expect(try await TestEnvironment.eventually { connection.connectedEndpoint == node1.endpoint })
        #expect(connection.reconnectCount == 2)
    }

    @Test(
        "on reconnecting, a declaration the broker now refuses for good (other arguments, 406) is logged and dropped, and the connection comes back")
    func conflictingDeclarationDropped() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let logs = LogCapture()
        var amqp = Self.configuration([Self.broker], vhost: vhost)
        amqp.options.separatePublishing = false
        let connection = AMQPConnection(configuration: amqp, logger: logs.logger(level: .info))
        try await connection.connect(keepTrying: true)
        defer { Task { await connection.close() } }
        try await connection.declare(QueueDeclaration(name: "agentry.test.conflict", durable: true, arguments: ["x-max-priority": 4]))
        try await connection.declare(QueueDeclaration(name: "agentry.test.kept", durable: true))

        // Someone else replaces the queue with other arguments while this connection is down.
        let other = try await TestEnvironment.connect(vhost: vhost)
        try await other.deleteQueue("agentry.test.conflict")
        try await other.declare(QueueDeclaration(name: "agentry.test.conflict", durable: true, arguments: ["x-max-priority": 10]))
        await other.close()
        try TestEnvironment.rabbitmqctl("close_all_connections", "-p", vhost, "agentry test: conflicting declaration")

        #expect(try await TestEnvironment.eventually { connection.reconnectCount == 1 && connection.isConnected })
        let dropped = logs.entries("cannot restore a declaration after reconnecting; dropping it")
        #expect(dropped.count == 1 && dropped.first?.metadata["error"]?.contains("406") == true, "\(dropped.map(\.metadata))")
        #expect(try await connection.queueExists("agentry.test.kept"))
        // Dropped for good: the next reconnect does not declare it again.
        try TestEnvironment.rabbitmqctl("close_all_connections", "-p", vhost, "agentry test: conflicting declaration")
        #expect(try await TestEnvironment.eventually { connection.reconnectCount == 2 && connection.isConnected })
        #expect(logs.entries("cannot restore a declaration after reconnecting; dropping it").count == 1)
    }
}
