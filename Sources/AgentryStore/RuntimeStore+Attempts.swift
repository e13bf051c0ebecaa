public import Foundation
import PostgresNIO

/// A run's attempts: every run of its agent for its event. An event an agent failed is tried again as a new run of
/// the same agent and event with the next attempt number (a retry from its delay queue, a redelivery after a worker
/// was lost, an operator's retry); they share `(agent_id, event_id)`, which `idx_task_runs_event` finds.
extension RuntimeStore {
    /// What the runs of one agent for one event say about trying it again.
    public struct AttemptFacts: Sendable {
        /// The runs, first attempt first.
        public var attempts: [TaskRun]
        /// The attempts whose retry an operator (or a cancel_on event) cancelled: the event is settled for the agent.
        public var retryCancelled: Set<UUID>
        /// The event envelope kept with one of them (a handed-over, waiting or deferred run keeps it), as JSON.
        public var keptEvent: String?

        public init(attempts: [TaskRun], retryCancelled: Set<UUID> = [], keptEvent: String? = nil) {
            self.attempts = attempts
            self.retryCancelled = retryCancelled
            self.keptEvent = keptEvent
        }
    }

    /// Every run of the run's agent for the run's event, first attempt first (at most 200).
    public func attempts(of run: TaskRun) async throws -> [TaskRun] {
        try await runs(where: "event_id = $1::text AND agent_id = $2", binds: [.text(run.eventID), .text(run.agentID)], limit: 200)
            .sorted { ($0.attempt, $0.startedAt) < ($1.attempt, $1.startedAt) }
    }

    /// The attempts with what a retry needs to know of them.
    public func attemptFacts(of run: TaskRun) async throws -> AttemptFacts {
        var facts = AttemptFacts(attempts: try await attempts(of: run), retryCancelled: [], keptEvent: nil)
        try await query(
            "read the attempts of run \(run.runID)",
            """
            SELECT run_id, retry_cancelled, event::text FROM task_runs
            WHERE event_id = \(run.eventID) AND agent_id = \(run.agentID) AND (retry_cancelled OR event IS NOT NULL)
            """
        ) { row in
            let (runID, cancelled, event) = try row.decode((UUID, Bool, String?).self)
            if cancelled { facts.retryCancelled.insert(runID) }
            if let event, facts.keptEvent == nil { facts.keptEvent = event }
        }
        return facts
    }
}
