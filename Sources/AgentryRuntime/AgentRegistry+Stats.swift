public import AgentryStore

extension AgentRegistry {
    /// An agent's per-version statistics (``VersionStats``), with where the agent stands (its current version and
    /// canary). Throws ``RegistryError/Code-swift.struct/notFound`` for an agent that is not registered.
    public func stats(agentID: String) async throws -> (state: AgentState?, versions: [VersionStats]) {
        guard !(try await store.versions(of: agentID)).isEmpty else {
            throw RegistryError(.notFound, "no agent '\(agentID)' is registered (see `agentry agents list`)")
        }
        let stats = try await VersionStatsStore(database: store.database, logger: logger).stats(agentID: agentID)
        return (try await store.state(of: agentID), stats)
    }
}
