public import AMQP
public import AgentryStore
public import Foundation

/// What operators do to running agents, from the CLI or the admin API: start, pause, resume and stop agents (the
/// desired state persists in PostgreSQL and reaches every worker through `agentry.control`), and cancel runs.
public struct AgentControl: Sendable {
    let store: RuntimeStore
    let connection: AMQPConnection

    public init(store: RuntimeStore, connection: AMQPConnection) {
        self.store = store
        self.connection = connection
    }

    /// Records the desired state and tells every worker to apply it now.
    public func set(_ state: DesiredState, agentID: String) async throws {
        try await store.setDesiredState(state, agentID: agentID)
        try await WorkerCommand.sync.send(on: connection)
    }

    /// Cancels a run: a running one (its handler is stopped, the run recorded as cancelled, the event dropped), or
    /// one that failed and waits for its retry (the retry is dropped when it comes back).
    public func cancel(runID: UUID, by who: String) async throws -> TaskRun {
        guard let run = try await store.run(id: runID) else {
            throw StoreError(.notFound, "no run \(runID.uuidString.lowercased())")
        }
        if run.state == .running {
            try await WorkerCommand.cancel(runID: runID, by: who).send(on: connection)
            return run
        }
        if run.retryAt != nil, try await store.cancelRetry(runID, by: who) {
            return run
        }
        throw StoreError(
            .notFound,
            "run \(runID.uuidString.lowercased()) is neither running nor waiting for a retry (it is \(run.state.rawValue)); nothing to cancel")
    }
}
