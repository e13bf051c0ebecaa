import AMQP

extension Topology {
    /// Queues that `apply` may declare again when they exist with other arguments: queues nothing consumes for
    /// long, whose messages can be moved aside and back (`agentry.dead`, whose length limit came after it).
    static let movableQueues: Set<String> = [deadQueue]

    /// Declares `queue` again with the topology's arguments, which RabbitMQ does not let an existing queue change,
    /// keeping its messages: they move to a holding queue, the queue is deleted and declared anew, and they move
    /// back. Messages published meanwhile wait in the holding queue (bound like the queue) and move back too.
    /// - Returns: how many messages moved into the queue declared anew.
    func redeclare(_ queue: QueueDeclaration, on connection: AMQPConnection) async throws -> Int {
        let status = try await connection.queueStatus(queue.name)
        guard status.consumerCount == 0 else {
            throw TopologyError(
                "queue '\(queue.name)' exists with other arguments than the topology's, and \(status.consumerCount) consumer(s) read it (`agentry dead list` or replay under way?); run `agentry topology apply` again once they are done"
            )
        }
        let holding = QueueDeclaration(name: "\(queue.name).redeclaring", durable: true, arguments: queue.arguments)
        let feeding = bindings.filter { $0.destination == .queue(queue.name) }
        try await connection.declare(holding)
        for binding in feeding {
            try await connection.bind(
                BindingDeclaration(
                    source: binding.source, destination: .queue(holding.name),
                    routingKey: binding.routingKey, arguments: binding.arguments))
            try await connection.unbind(binding)
        }
        _ = try await Self.move(from: queue.name, to: holding.name, on: connection)
        try await connection.deleteQueue(queue.name, ifEmpty: true)
        try await connection.declare(queue)
        for binding in feeding {
            try await connection.bind(binding)
            try await connection.unbind(
                BindingDeclaration(
                    source: binding.source, destination: .queue(holding.name),
                    routingKey: binding.routingKey, arguments: binding.arguments))
        }
        let moved = try await Self.move(from: holding.name, to: queue.name, on: connection)
        try await connection.deleteQueue(holding.name, ifEmpty: true)
        return moved
    }

    /// Moves every message of `source` to `destination` (through the default exchange, properties and body as
    /// they are), each acked only once the broker confirmed its copy. Returns how many moved.
    static func move(from source: String, to destination: String, on connection: AMQPConnection) async throws -> Int {
        let channel = try await connection.openChannel(confirms: true)
        defer { channel.close() }
        var moved = 0
        while true {
            let waiting = Int(try await connection.queueStatus(source).messageCount)
            guard waiting > 0 else { return moved }
            let consumer = try await connection.consume(queue: source, prefetch: UInt16(clamping: min(waiting, 500)))
            var iterator = consumer.makeAsyncIterator()
            var taken = 0
            do {
                while taken < waiting, let delivery = try await iterator.next() {
                    try await channel.publish(
                        AMQPMessage(
                            exchange: "", routingKey: destination, body: delivery.body,
                            properties: delivery.properties))
                    delivery.ack()
                    taken += 1
                }
            } catch {
                await consumer.close()
                throw TopologyError(
                    "moving the messages of '\(source)' to '\(destination)' stopped after \(moved + taken): \(error); run `agentry topology apply` again to finish"
                )
            }
            await consumer.close()
            moved += taken
        }
    }
}
