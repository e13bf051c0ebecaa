import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging

/// What every runner of a worker shares.
struct WorkerContext: Sendable {
    let workerID: String
    let connection: AMQPConnection
    let bus: EventBus
    let dead: DeadLetters
    let retryChannel: AMQPChannel
    let store: RuntimeStore
    let registry: AgentRegistryStore
    let topology: Topology
    let handlers: HandlerRunner
    /// Takes the resources agents declare.
    let locks: LockManager
    let options: WorkerOptions
    let logger: Logger
    /// Run outcomes, written in groups (see ``GroupCommit``).
    let outcomes: GroupCommit<(runID: UUID, agentID: String, slot: Int?, outcome: RuntimeStore.Outcome), Bool>
    /// The key run tokens are signed with (nil: exec handlers get none).
    var runTokenKey: [UInt8]?
    var source: String { "agentry.worker" }
    /// Where delayed follow-up events wait for their time.
    var delayed: DelayedEventStore { DelayedEventStore(database: store.database, logger: logger) }

    /// Records how a run ended (and gives its slot back); false when it was no longer running.
    func finish(_ run: TaskRun, _ outcome: RuntimeStore.Outcome) async throws -> Bool {
        try await outcomes.submit((run.runID, run.agentID, run.slot, outcome))
    }

    static func outcomeWriter(_ store: RuntimeStore) -> GroupCommit<(runID: UUID, agentID: String, slot: Int?, outcome: RuntimeStore.Outcome), Bool> {
        GroupCommit(maxBatch: 200) { batch in
            do {
                let recorded = try await store.finish(batch: batch)
                return batch.map { .success(recorded.contains($0.runID)) }
            } catch {
                // One run refused (another run completed its event first) fails the statement: write them one by one.
                var results: [Result<Bool, any Error>] = []
                for item in batch {
                    do {
                        results.append(.success(try await store.finish(item.runID, agentID: item.agentID, slot: item.slot, item.outcome)))
                    } catch {
                        results.append(.failure(error))
                    }
                }
                return results
            }
        }
    }

    /// Publishes a lifecycle event that the run's own statement already wrote to `event_log`; a failure is logged,
    /// never fatal to the run (the run record and the log keep what happened).
    func announceLogged(_ event: Event) async {
        do {
            try await bus.publishLogged(event)
        } catch {
            logger.warning("cannot announce \(event.type)", metadata: ["error": "\(error)"])
        }
    }

    /// Publishes a lifecycle event; a failure is logged, never fatal to the run.
    func announce(_ event: Event) async {
        do {
            try await bus.publish(event)
        } catch {
            logger.warning("cannot announce \(event.type)", metadata: ["error": "\(error)"])
        }
    }
}
