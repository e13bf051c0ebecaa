public import AgentryCore
import Foundation
import PostgresNIO

/// The events a run published. A follow-up carries its cause's id as `causation_id` and its chain's
/// `correlation_id`, which `idx_event_log_correlation` finds; of those, a run's own are the ones that name it in their
/// payload (`agent.task.*`, `approval.*`, `resource.*`: `run_id`) and, when its handler succeeded, those its agent
/// published (`source` = the agent: the result's `events`, `emit`, delegated tasks). An agent completes an event once,
/// so the latter belong to that one run of its attempts.
extension EventLogStore {
    public func followUps(of run: TaskRun, cause: Event, handlerSucceeded: Bool, limit: Int = 200) async throws -> [Entry] {
        let correlation = cause.correlationID ?? cause.id.rawValue
        let runID = run.runID.uuidString.lowercased()
        return try await entries(
            """
            \(unescaped: Self.select)
            WHERE correlation_id = \(correlation) AND causation_id = \(cause.id.rawValue)
              AND (payload->>'run_id' = \(runID) OR (\(handlerSucceeded) AND source = \(run.agentID)))
            ORDER BY created_at, event_id LIMIT \(limit)
            """)
    }
}
