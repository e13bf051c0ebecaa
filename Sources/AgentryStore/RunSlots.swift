import Logging
import PostgresNIO

extension PostgresConnection {
    /// Gives back the agent slot `run` holds, in the caller's transaction: for a run that goes on existing without one
    /// (waiting for its children, an approval or its turn).
    func releaseSlot(of run: TaskRun, logger: Logger) async throws {
        try await queryAll(
            "UPDATE agent_slots SET run_id = NULL, worker_id = NULL, taken_at = NULL WHERE agent_id = \(run.agentID) AND run_id = \(run.runID)",
            logger: logger)
    }
}
