import AgentryStore
import Foundation
import Logging

extension LockManager {
    /// Keeps a run's ended hold with the run (``LockStore/record(_:of:)``), for its page: `resource_locks` only knows
    /// each resource's latest holder. A failure costs the run's record that entry, never the release.
    func recordForRun(_ hold: LockHold, ending: RunLock.Ending) async {
        guard let runID = hold.runID else { return }
        let now = Date()
        let locks = hold.resources.map { resource in
            RunLock(
                resource: resource, fencingToken: hold.fencingTokens[resource] ?? 0, acquiredAt: hold.acquiredAt, expiresAt: hold.expiresAt,
                releasedAt: now, ending: ending)
        }
        do {
            try await store.record(locks, of: runID)
        } catch {
            logger.warning(
                "cannot keep the locks a run held with the run", metadata: ["agentry.run.id": "\(runID)", "error": "\(StoreError.describe(error))"])
        }
    }
}
