import AgentryCore
import AgentryStore
import Logging
import NIOConcurrencyHelpers

/// A canary: a published version that runs a share of the agent's events while the rest stay on the current version.
/// The worker's registry sync hands the runner the canary the registry has (``follow(canary:)``); `receive` then sends
/// each event whose bucket (``CanarySplit``) falls under the canary's percent to the canary's definition, with no
/// round trip per event.
extension AgentRunner {
    struct Canary: Sendable {
        let definition: AgentDefinition
        let percent: Int

        /// Whether the canary takes this event of `agentID`.
        func takes(_ id: EventID, of agentID: String) -> Bool {
            CanarySplit.takes(percent: percent, agentID: agentID, eventID: id.rawValue)
        }
    }

    /// The canary's definition and share after a sync: the same definition when its version did not change (a published
    /// version never does), else read from the registry; none when the registry has none or names the current version.
    /// A canary whose definition cannot be read is not run (logged with each sync): its events stay on the current
    /// version.
    func follow(canary wanted: AgentState.Canary?) async {
        guard let wanted, wanted.version != definition.metadata.version else {
            let ended = state.withLockedValue { s -> String? in
                defer { s.canary = nil }
                return s.canary?.definition.metadata.version
            }
            if let ended { logger.info("canary ended", metadata: ["agentry.canary.version": "\(ended)"]) }
            return
        }
        let existing = state.withLockedValue { $0.canary?.definition }
        var definition = existing?.metadata.version == wanted.version ? existing : nil
        if definition == nil {
            do {
                var loaded = state.withLockedValue { $0.pinned[wanted.version] }
                if loaded == nil {
                    guard let stored = try await context.registry.version(wanted.version, of: agentID), stored.status == .published else {
                        logger.warning(
                            "the canary's version is not published; its events stay on the current version",
                            metadata: ["agentry.canary.version": "\(wanted.version)"])
                        return
                    }
                    loaded = try AgentRegistry.decode(stored)
                }
                // Its limit may be above the current version's: the slots it may take must exist.
                if let loaded { try await context.store.ensureSlots(agentID: agentID, count: loaded.config.maxParallelTasks) }
                definition = loaded
            } catch {
                logger.error(
                    "cannot read the canary's definition; its events stay on the current version",
                    metadata: ["agentry.canary.version": "\(wanted.version)", "error": "\(error)"])
                return
            }
        }
        guard let definition else { return }
        let changed = state.withLockedValue { s -> Bool in
            let changed = s.canary?.definition.metadata.version != wanted.version || s.canary?.percent != wanted.percent
            s.canary = Canary(definition: definition, percent: wanted.percent)
            return changed
        }
        if changed {
            logger.info(
                "canary takes its share of the events",
                metadata: ["agentry.canary.version": "\(wanted.version)", "agentry.canary.percent": "\(wanted.percent)"])
        }
    }
}
