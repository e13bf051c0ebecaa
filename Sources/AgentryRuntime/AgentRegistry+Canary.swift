import AgentryBus
import AgentryCore
public import AgentryStore
import Foundation
import Logging

/// Canaries: `agentry agents publish ID --version V --canary 10%` publishes V beside the current version and gives it
/// that share of the agent's events (``CanarySplit``); `promote` makes it the current version (a normal publish of V)
/// and `rollback` ends it. The queue stays bound to the current version's patterns while a canary runs. Workers learn
/// of a change at once (a sync command) or at their next periodic sync.
extension AgentRegistry {
    /// What a canary publish did.
    public struct CanaryPublication: Sendable, Equatable {
        public var agentID: String
        /// The canary.
        public var version: String
        public var percent: Int
        /// The version the other events stay on.
        public var currentVersion: String
    }

    /// Publishes `version` as the agent's canary at `percent` (1 to 100) of its events. The version must be registered,
    /// pass the publish checks, and differ from the current one; the agent must have a current version.
    public func publishCanary(agentID: String, version: String, percent: Int) async throws -> CanaryPublication {
        guard (1...100).contains(percent) else {
            throw RegistryError(.invalid, "the canary's share must be a whole percent from 1 to 100, not \(percent)")
        }
        return try await store.withAgentLock(agentID) {
            let versions = try await store.versions(of: agentID)
            guard !versions.isEmpty else {
                throw RegistryError(.notFound, "no agent '\(agentID)' is registered; register it first with `agentry agents apply FILE`")
            }
            guard let chosen = versions.first(where: { $0.version == version }) else {
                throw RegistryError(
                    .notFound, "agent '\(agentID)' has no version \(version); registered: \(Self.sortedVersions(versions).joined(separator: ", "))")
            }
            guard let state = try await store.state(of: agentID), !state.retired, let current = state.activeVersion else {
                throw RegistryError(
                    .conflict,
                    "agent '\(agentID)' has no current version for the canary to run beside; publish one first with `agentry agents publish \(agentID)`"
                )
            }
            guard current != version else {
                throw RegistryError(.conflict, "\(agentID) \(version) is the current version already; a canary must be another version")
            }
            try await checkReferences(try Self.decode(chosen))
            try await store.markCanary(agentID: agentID, version: version, percent: percent)
            try await bus.publish(
                Event(
                    type: "agent.canary.started",
                    payload: [
                        "agent_id": .string(agentID), "version": .string(version), "percent": .int(Int64(percent)),
                        "current_version": .string(current),
                    ], priority: .normal, source: "agentry.registry"))
            logger.info(
                "agent canary published",
                metadata: ["agentry.agent.id": "\(agentID)", "agentry.agent.version": "\(version)", "agentry.canary.percent": "\(percent)"])
            try? await WorkerCommand.sync.send(on: bus.connection)
            return CanaryPublication(agentID: agentID, version: version, percent: percent, currentVersion: current)
        }
    }

    /// Makes the agent's canary its current version (a normal publish of it, which ends the canary).
    public func promoteCanary(agentID: String) async throws -> Publication {
        let canary = try await currentCanary(agentID, action: "promote")
        let publication = try await publish(agentID: agentID, version: canary.version)
        try await bus.publish(
            Event(
                type: "agent.canary.promoted", payload: ["agent_id": .string(agentID), "version": .string(canary.version)],
                priority: .normal, source: "agentry.registry"))
        return publication
    }

    /// Ends the agent's canary: every event goes to the current version again. Returns the canary it ended.
    public func rollbackCanary(agentID: String) async throws -> AgentState.Canary {
        _ = try await currentCanary(agentID, action: "roll back")
        guard let ended = try await store.endCanary(agentID: agentID) else {
            throw RegistryError(.conflict, "agent '\(agentID)' has no canary to roll back")
        }
        try await bus.publish(
            Event(
                type: "agent.canary.rolled_back", payload: ["agent_id": .string(agentID), "version": .string(ended.version)],
                priority: .normal, source: "agentry.registry"))
        logger.info("agent canary rolled back", metadata: ["agentry.agent.id": "\(agentID)", "agentry.agent.version": "\(ended.version)"])
        try? await WorkerCommand.sync.send(on: bus.connection)
        return ended
    }

    private func currentCanary(_ agentID: String, action: String) async throws -> AgentState.Canary {
        guard let state = try await store.state(of: agentID) else {
            if try await store.versions(of: agentID).isEmpty { throw RegistryError(.notFound, "no agent '\(agentID)' is registered") }
            throw RegistryError(.conflict, "agent '\(agentID)' was never published; it has no canary to \(action)")
        }
        guard let canary = state.canary else {
            throw RegistryError(
                .conflict,
                "agent '\(agentID)' has no canary to \(action); start one with `agentry agents publish \(agentID) --version V --canary 10%`")
        }
        return canary
    }
}
