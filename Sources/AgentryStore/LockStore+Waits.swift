public import AgentryCore
public import Foundation
import PostgresNIO

/// Lock waits: one `lock_waits` row per request that was queued, written when its wait ends, for the console's lock
/// wait chart (``StatsStore``). Nothing else keeps how long a wait took once it is over.
extension LockStore {
    /// Records that request `requestID` waited `seconds` for `resources` and how the wait ended (`acquired`,
    /// `timed_out`, `cancelled`, …); the row's `ended_at` is the database's clock now. Recorded once per request.
    public func recordWait(
        _ requestID: UUID, resources: [ResourceKey], owner: LockOwner, priority: Priority, workerID: String?, runID: UUID?,
        outcome: String, seconds: Double
    ) async throws {
        let names = resources.map(\.description)
        let seconds = max(0, seconds)
        do {
            try await database.write(
                """
                INSERT INTO lock_waits (id, resources, owner_id, owner_type, priority, worker_id, run_id, outcome, waited_seconds)
                VALUES (\(requestID), \(names)::text[], \(owner.id), \(owner.kind.rawValue), \(priority.rawValue), \(workerID), \(runID),
                        \(outcome), \(seconds))
                ON CONFLICT (id) DO NOTHING
                """, logger: logger)
        } catch {
            throw StoreError(.query, "cannot record the wait of lock request \(requestID)", cause: error)
        }
    }
}
