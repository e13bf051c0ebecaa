import AgentryBus
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

extension Agentry.Runs {
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a finished run's event again for its agent.",
            discussion: """
                While the agent has not completed the event, the event goes to the agent's queue again and runs as its \
                next attempt. An agent completes an event once (succeeded, skipped, rejected, over budget, or its retry \
                cancelled): then a copy of the event (a new id, caused by the original) is logged and sent to that agent \
                only. Refused while the run or another attempt of its event has not finished, while a retry of it is due, \
                and for a delegated task (retry its root run).
                """)
        @OptionGroup var options: GlobalOptions

        @Argument(help: "Run id.")
        var id: String

        func validate() throws {
            if UUID(uuidString: id) == nil { throw ValidationError("'\(id)' is not a run id (a UUID); `agentry runs list` shows them") }
        }

        func run() async throws {
            let id = UUID(uuidString: self.id)!
            let logger = try options.logger("agentry.runs", default: .warning)
            let retried = try await withRuntime(options) { connection, store in
                let bus = try await EventBus(connection: connection, logger: logger)
                let eventLog = EventLogStore(database: store.database, logger: logger)
                return try await RunRetry(store: store, eventLog: eventLog, bus: bus).retry(runID: id)
            }
            print(retried.message)
            print("`agentry runs list --agent \(retried.agentID) --event \(retried.eventID)` shows its run")
        }
    }
}
