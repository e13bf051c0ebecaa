import AMQP
import AgentryBus
import AgentryCore
import AgentryStore

/// The bindings of an agent's queue of cancelling events (``AgentryBus/Topology/cancelQueue(_:)``): made when a
/// version with `cancel_on` is published, the previous version's that this one lacks removed, all removed on retire.
extension AgentRegistry {
    /// Binds the cancelling events of `definition` and unbinds those of `previousVersion` it does not name.
    func bindCancelQueue(_ definition: AgentDefinition, previousVersion: String?) async throws {
        let agentID = definition.metadata.id
        let patterns = definition.cancelOnPatterns
        if !patterns.isEmpty {
            do {
                try await bus.declareCancelQueue(agentID, patterns: patterns)
            } catch {
                throw RegistryError(.broker, "cannot declare or bind queue \(Topology.cancelQueue(agentID).name): \(error)")
            }
        }
        for pattern in try await cancelPatterns(of: agentID, version: previousVersion) where !patterns.contains(pattern) {
            do {
                try await bus.unbindCancelQueue(agentID, pattern: pattern)
            } catch {
                throw RegistryError(
                    .broker,
                    "published, but cannot remove the old binding '\(pattern)' of \(Topology.cancelQueue(agentID).name): \(error); publish again to retry"
                )
            }
        }
    }

    /// Removes the bindings of the cancelling events of `version` (retire).
    func unbindCancelQueue(agentID: String, version: String?) async throws {
        for pattern in try await cancelPatterns(of: agentID, version: version) {
            do {
                try await bus.unbindCancelQueue(agentID, pattern: pattern)
            } catch {
                throw RegistryError(.broker, "cannot remove the binding '\(pattern)' of \(Topology.cancelQueue(agentID).name): \(error)")
            }
        }
    }

    /// The `cancel_on` patterns of a stored version ([] when there is none, or it no longer reads).
    private func cancelPatterns(of agentID: String, version: String?) async throws -> [String] {
        guard let version, let stored = try await store.version(version, of: agentID), let definition = try? Self.decode(stored) else {
            return []
        }
        return definition.cancelOnPatterns
    }
}
