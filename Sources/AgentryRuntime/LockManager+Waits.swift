import AgentryCore
import AgentryStore
import Foundation
import Logging

extension LockManager {
    /// Records how long a request that was queued waited and how its wait ended (`lock_waits`, for the console's lock
    /// wait chart): `acquired`, `timed_out`, `cancelled`, `shut_down`, `database`, …. A request served at once records
    /// nothing. A failure to record is logged, never the request's failure.
    func recordWait(
        _ requestID: UUID, _ keys: [ResourceKey], _ owner: LockOwner, _ priority: Priority, _ runID: UUID?, _ outcome: String,
        since started: ContinuousClock.Instant
    ) async {
        let seconds = (ContinuousClock.now - started).inSeconds
        // The error codes are camel case (timedOut); the table's outcomes are snake case, as the API's names are.
        let snake = outcome.reduce(into: "") { text, character in
            if character.isUppercase { text += "_" + character.lowercased() } else { text.append(character) }
        }
        do {
            try await store.recordWait(
                requestID, resources: keys, owner: owner, priority: priority, workerID: workerID, runID: runID, outcome: snake, seconds: seconds)
        } catch {
            logger.warning("cannot record a lock wait (the lock wait chart misses it)", metadata: ["error": "\(error)"])
        }
    }
}
