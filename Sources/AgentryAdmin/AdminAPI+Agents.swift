import AgentryCore
import AgentryRuntime
import AgentryStore
import HTTPTypes
import NIOCore

/// Agent definitions: register, list, show, publish; and what every worker does with an agent.
extension AdminAPI {
    func registerAgent(_ input: Operations.RegisterAgent.Input) async throws -> Operations.RegisterAgent.Output {
        let definition = try Self.sentDefinition()
        let outcome = try await dependencies.registry.register(definition)
        let message: String
        switch outcome {
        case .created: message = "Agent registered successfully"
        case .replaced: message = "Agent registered successfully (the draft was replaced)"
        case .unchanged: message = "Agent already registered with this definition; nothing changed"
        }
        let registered = Components.Schemas.Registered(
            agentId: definition.metadata.id, version: definition.metadata.version, status: .draft,
            outcome: outcome == .created ? .created : outcome == .replaced ? .replaced : .unchanged, message: message)
        return outcome == .unchanged ? .ok(.init(body: .json(registered))) : .created(.init(body: .json(registered)))
    }

    /// Checks a definition as ``registerAgent(_:)`` does and says what registering it would do, registering nothing.
    func validateAgent(_ input: Operations.ValidateAgent.Input) async throws -> Operations.ValidateAgent.Output {
        let definition = try Self.sentDefinition()
        let (id, version) = (definition.metadata.id, definition.metadata.version)
        let outcome: Components.Schemas.Validated.OutcomePayload
        let message: String
        switch try await dependencies.registry.definition(agentID: id, version: version) {
        case nil:
            (outcome, message) = (.created, "Valid: registering it makes version \(version) of \(id) a new draft")
        case let (_, stored)? where stored == definition:
            (outcome, message) = (.unchanged, "Valid: version \(version) of \(id) is registered with this definition already")
        case let (record, _)? where record.status == .draft:
            (outcome, message) = (.replaced, "Valid: registering it replaces the draft of version \(version) of \(id)")
        case let (record, _)?:
            (outcome, message) = (
                .conflict,
                "Valid, but version \(version) of \(id) is \(record.status.rawValue) with another definition and cannot change: raise the version to register it"
            )
        }
        return .ok(.init(body: .json(.init(agentId: id, version: version, name: definition.metadata.name, outcome: outcome, message: message))))
    }

    /// The definition in the request's body as sent, YAML or JSON (JSON is YAML, so one parser gives both the same
    /// validation, with line and column); 400 when there is none, 422 with its problems.
    static func sentDefinition() throws -> AgentDefinition {
        let body = AdminRequest.current.body
        guard body.readableBytes > 0 else { throw AdminError.badRequest("the request body is empty: send an agent definition (YAML or JSON)") }
        let parsed = Result { () throws(AgentDefinitionError) -> AgentDefinition in
            try AgentDefinition.parse(yaml: String(buffer: body), file: "request body")
        }
        return try definition(parsed)
    }

    /// The definition, or 422 `invalid_agent` with every problem, its line and column.
    static func definition(_ parsed: Result<AgentDefinition, AgentDefinitionError>) throws -> AgentDefinition {
        switch parsed {
        case .success(let definition):
            return definition
        case .failure(let error):
            let problems: [JSONValue] = error.problems.map { problem in
                .object([
                    "path": .string(problem.path), "line": problem.line.map { .int(Int64($0)) } ?? .null,
                    "column": problem.column.map { .int(Int64($0)) } ?? .null, "message": .string(problem.message),
                    "suggestion": Representation.string(problem.suggestion),
                ])
            }
            let summary = error.problems.map(\.description).joined(separator: "; ")
            throw AdminError(
                status: .unprocessableContent, code: "invalid_agent",
                message: "the agent definition has \(error.problems.count) problem(s): \(summary)",
                extra: ["problems": .array(problems)])
        }
    }

    func listAgents(_ input: Operations.ListAgents.Input) async throws -> Operations.ListAgents.Output {
        let agents = try await status.agents()
        return .ok(.init(body: .json(.init(agents: agents, count: agents.count))))
    }

    /// One agent's definition; the values of `exec.env` and `http.headers` (and a password in `http.url`) only to
    /// callers with the token.
    func getAgent(_ input: Operations.GetAgent.Input) async throws -> Operations.GetAgent.Output {
        let id = input.path.agentId, version = input.query.version
        if let version {
            do {
                _ = try SemanticVersion(validating: version)
            } catch {
                throw AdminError.badRequest("version '\(version)' is not a semantic version (e.g. 1.2.0): \(error)")
            }
        }
        let registry = dependencies.registry
        var found = try await registry.definition(agentID: id, version: version)
        if found == nil, version == nil, let latest = try await registry.list().first(where: { $0.agentID == id })?.versions.last {
            found = try await registry.definition(agentID: id, version: latest.version)
        }
        guard let (stored, definition) = found else {
            throw AdminError.notFound("Agent not found: no agent '\(id)'\(version.map { " version \($0)" } ?? "")")
        }
        let revealSecrets = callerHasToken
        let shown = revealSecrets ? definition : definition.redactingSecrets()
        let json = revealSecrets ? try JSON.parse(Array(stored.definition.utf8)) : shown.jsonValue()
        return .ok(
            .init(
                body: .json([
                    "agent_id": .string(id), "version": .string(stored.version), "status": .string(stored.status.rawValue),
                    "definition": json, "yaml": .string(shown.yaml()), "secrets_redacted": .bool(!revealSecrets && shown != definition),
                ])))
    }

    func publishAgent(_ input: Operations.PublishAgent.Input) async throws -> Operations.PublishAgent.Output {
        let body = input.body.map { body in
            switch body {
            case .json(let json): json
            }
        }
        let (id, version) = (input.path.agentId, body?.version)
        if let percent = body?.canaryPercent {
            guard let version else { throw AdminError.badRequest("'canary_percent' needs 'version': the version to run as the canary") }
            guard (1...100).contains(percent) else { throw AdminError.badRequest("'canary_percent' must be from 1 to 100, not \(percent)") }
            let canary = try await dependencies.registry.publishCanary(agentID: id, version: version, percent: percent)
            return .ok(
                .init(
                    body: .json(
                        .init(
                            agentId: id, version: canary.version, canaryPercent: canary.percent, currentVersion: canary.currentVersion,
                            message: "Canary published: \(canary.version) takes \(canary.percent)% of the events, \(canary.currentVersion) the rest"))
                ))
        }
        let publication = try await dependencies.registry.publish(agentID: id, version: version)
        return .ok(.init(body: .json(.init(agentId: id, version: publication.version, message: "Agent published"))))
    }

    func promoteAgentCanary(_ input: Operations.PromoteAgentCanary.Input) async throws -> Operations.PromoteAgentCanary.Output {
        let id = input.path.agentId
        let publication = try await dependencies.registry.promoteCanary(agentID: id)
        return .ok(
            .init(
                body: .json(
                    .init(
                        agentId: id, version: publication.version, currentVersion: publication.version,
                        message: "Canary promoted: \(publication.version) is the current version"))))
    }

    func rollbackAgentCanary(_ input: Operations.RollbackAgentCanary.Input) async throws -> Operations.RollbackAgentCanary.Output {
        let id = input.path.agentId
        let ended = try await dependencies.registry.rollbackCanary(agentID: id)
        let current = try await AgentRegistryStore(database: dependencies.database, logger: logger).state(of: id)?.activeVersion ?? "-"
        return .ok(
            .init(
                body: .json(
                    .init(
                        agentId: id, version: ended.version, currentVersion: current,
                        message: "Canary rolled back: every event goes to \(current) again"))))
    }

    func invokeAgent(_ input: Operations.InvokeAgent.Input) async throws -> Operations.InvokeAgent.Output {
        let body =
            switch input.body {
            case .json(let json): json
            }
        let payload = try payloadObject(body.payload)
        let priority = try priorityLevel(body.priority)
        var id: EventID?
        if let text = body.id {
            guard let parsed = EventID(text) else { throw AdminError.badRequest("'id' is not an event id (1 to 255 bytes, no NUL)") }
            id = parsed
        }
        let event = try await dependencies.registry.invoke(
            agentID: input.path.agentId, task: body.task ?? "invoke", payload: payload, priority: priority, version: body.version,
            by: AdminIdentity.current.describe(authority: AdminRequest.current.head.authority), id: id)
        return .accepted(published(event, message: "Agent \(input.path.agentId) invoked"))
    }

    func pauseAgent(_ input: Operations.PauseAgent.Input) async throws -> Operations.PauseAgent.Output {
        .ok(try await setDesiredState(.paused, agentID: input.path.agentId, action: "pause"))
    }

    func resumeAgent(_ input: Operations.ResumeAgent.Input) async throws -> Operations.ResumeAgent.Output {
        .ok(try await setDesiredState(.running, agentID: input.path.agentId, action: "resume"))
    }

    func stopAgent(_ input: Operations.StopAgent.Input) async throws -> Operations.StopAgent.Output {
        .ok(try await setDesiredState(.stopped, agentID: input.path.agentId, action: "stop"))
    }

    func startAgent(_ input: Operations.StartAgent.Input) async throws -> Operations.StartAgent.Output {
        .ok(try await setDesiredState(.running, agentID: input.path.agentId, action: "start"))
    }

    private func setDesiredState(_ state: DesiredState, agentID id: String, action: String) async throws -> Components.Responses.DesiredStateSet {
        try await dependencies.control.set(state, agentID: id)
        let desired: Components.Responses.DesiredStateSet.Body.JsonPayload.DesiredStatePayload
        switch state {
        case .running: desired = .running
        case .paused: desired = .paused
        case .stopped: desired = .stopped
        }
        return .init(body: .json(.init(agentId: id, desiredState: desired, message: "Agent \(id): \(action) sent to every worker")))
    }
}
