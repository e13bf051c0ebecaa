public import AMQP

extension Topology {
    /// The queue of an agent's cancelling events (its definition's `cancel_on` types), `agentry.agent.<id>.cancel`
    /// (agent ids have no dots, so it is no other agent's queue). A queue of their own: in the agent's queue they
    /// would wait behind the events its workers hold (each takes its share of `max_parallel_tasks`) while the runs
    /// they should stop run, and reach a worker only once one ended.
    public static func cancelQueue(_ agentID: String) -> QueueDeclaration {
        QueueDeclaration(name: "\(agentQueuePrefix)\(agentID).cancel", durable: true, arguments: ["x-max-priority": .int(maxPriority)])
    }

    /// The binding that routes events matching `pattern` to an agent's queue of cancelling events.
    public static func cancelBinding(_ agentID: String, pattern: String) -> BindingDeclaration {
        BindingDeclaration(source: routeExchange, destination: .queue(cancelQueue(agentID).name), routingKey: pattern)
    }
}

extension EventBus {
    /// Declares an agent's queue of cancelling events and binds it to each pattern (idempotent).
    public func declareCancelQueue(_ agentID: String, patterns: [String]) async throws {
        try await connection.declare(Topology.cancelQueue(agentID))
        for pattern in patterns {
            try await connection.bind(Topology.cancelBinding(agentID, pattern: pattern))
        }
    }

    /// Removes one pattern's binding from an agent's queue of cancelling events.
    public func unbindCancelQueue(_ agentID: String, pattern: String) async throws {
        try await connection.unbind(Topology.cancelBinding(agentID, pattern: pattern))
    }
}
