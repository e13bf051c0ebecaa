import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation

/// Agent instances on the workers (seed Step 3.1), the agents' queues and the workers.
extension AdminAPI {
    func listInstances(_ input: Operations.ListInstances.Input) async throws -> Operations.ListInstances.Output {
        let instances = try await dependencies.runtime.instances(agentID: input.query.agentId)
        return .ok(.init(body: .json(.init(instances: instances.map(Representation.instance)))))
    }

    func getInstance(_ input: Operations.GetInstance.Input) async throws -> Operations.GetInstance.Output {
        .ok(.init(body: .json(Representation.instance(try await instance(input.path.instanceId)))))
    }

    /// Publishes the agent when it has no published version, or another than the one asked for, and starts it on every
    /// worker.
    func startInstance(_ input: Operations.StartInstance.Input) async throws -> Operations.StartInstance.Output {
        let body = input.body.map { body in
            switch body {
            case .json(let json): json
            }
        }
        let id = try required("agent_id", input.query.agentId, body?.agentId)
        let version = input.query.version ?? body?.version
        let registry = dependencies.registry
        let active = try await registry.list().first { $0.agentID == id }
        guard let active else { throw AdminError.notFound("no agent '\(id)' is registered") }
        if let version, active.activeVersion != version {
            _ = try await registry.publish(agentID: id, version: version)
        } else if active.activeVersion == nil {
            _ = try await registry.publish(agentID: id)
        }
        try await dependencies.control.set(.running, agentID: id)
        // Workers apply it at once; give them a moment so that the answer can name an instance.
        var instance: InstanceRecord?
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            instance = try await dependencies.runtime.instances(agentID: id).first { $0.state == .idle || $0.state == .running }
            if instance != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return .accepted(
            .init(
                body: .json([
                    "agent_id": .string(id), "instance_id": Representation.id(instance?.instanceID), "message": "Agent started",
                ])))
    }

    /// Stops the instance's agent, on every worker.
    func stopInstance(_ input: Operations.StopInstance.Input) async throws -> Operations.StopInstance.Output {
        let instance = try await instance(input.path.instanceId)
        try await dependencies.control.set(.stopped, agentID: instance.agentID)
        return .ok(
            .init(
                body: .json(
                    .init(
                        agentId: instance.agentID, instanceId: instance.instanceID.uuidString.lowercased(),
                        message: "Agent stopped"))))
    }

    func listQueues(_ input: Operations.ListQueues.Input) async throws -> Operations.ListQueues.Output {
        .ok(.init(body: .json(.init(queues: try await status.queues()))))
    }

    func listWorkers(_ input: Operations.ListWorkers.Input) async throws -> Operations.ListWorkers.Output {
        .ok(.init(body: .json(.init(workers: try await dependencies.runtime.workers().map(Representation.worker)))))
    }

    private func instance(_ text: String) async throws -> InstanceRecord {
        let id = try uuid(text, "instance_id")
        guard let instance = try await dependencies.runtime.instances().first(where: { $0.instanceID == id }) else {
            throw AdminError.notFound("Instance not found: no instance \(id.uuidString.lowercased())")
        }
        return instance
    }
}
