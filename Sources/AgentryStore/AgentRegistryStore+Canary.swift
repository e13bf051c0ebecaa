import PostgresNIO

/// Canaries: a published version of an agent that takes a share of its events while the rest stay on its active
/// version (`agents.canary_version`, `canary_percent`).
extension AgentRegistryStore {
    /// Makes `version` the agent's canary at `percent`: the version becomes published (for good) and the agent's
    /// active version stays. Throws ``RegistryError/Code-swift.struct/notFound`` when the agent has no active version.
    public func markCanary(agentID: String, version: String, percent: Int) async throws {
        try await transaction(agentID: agentID) { [logger] connection in
            var active = false
            for try await _ in try await connection.queryAll(
                "SELECT 1 FROM agents WHERE agent_id = \(agentID) AND status = 'active' AND active_version IS NOT NULL", logger: logger)
            {
                active = true
            }
            guard active else {
                throw RegistryError(
                    .notFound,
                    "agent '\(agentID)' has no published version to run beside a canary; publish one first with `agentry agents publish \(agentID)`")
            }
            try await connection.queryAll(
                """
                UPDATE agent_registry SET status = 'published', published_at = coalesce(published_at, now()), updated_at = now()
                WHERE agent_id = \(agentID) AND version = \(version)
                """, logger: logger)
            try await connection.queryAll(
                """
                UPDATE agents SET canary_version = \(version), canary_percent = \(Int32(percent)), canary_started_at = now(), updated_at = now()
                WHERE agent_id = \(agentID)
                """, logger: logger)
        }
    }

    /// Ends the agent's canary (its events all go to the active version again); returns the canary it had, or nil.
    @discardableResult
    public func endCanary(agentID: String) async throws -> AgentState.Canary? {
        try await transaction(agentID: agentID) { [logger] connection in
            var ended: AgentState.Canary?
            for try await (version, percent) in try await connection.queryAll(
                """
                UPDATE agents a SET canary_version = NULL, canary_percent = NULL, canary_started_at = NULL, updated_at = now()
                FROM agents old
                WHERE a.agent_id = \(agentID) AND old.agent_id = a.agent_id AND old.canary_version IS NOT NULL
                RETURNING old.canary_version, old.canary_percent
                """, logger: logger
            ).decode((String, Int32).self) {
                ended = AgentState.Canary(version: version, percent: Int(percent))
            }
            return ended
        }
    }
}
