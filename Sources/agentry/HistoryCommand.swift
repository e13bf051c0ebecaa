import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging

extension Agentry {
    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The history kept in PostgreSQL: events (event_log) and task runs (task_runs).",
            subcommands: [Prune.self])
    }
}

extension Agentry.History {
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete events and finished runs older than a number of days, now (workers do it themselves with --history-retention-days).")

        @OptionGroup var options: GlobalOptions

        @Option(help: "Delete events whose timestamp, and finished runs that started, more than this many days ago (fractions allowed).")
        var olderThanDays: Double

        func validate() throws {
            guard olderThanDays > 0, olderThanDays <= 36_500 else {
                throw ValidationError("--older-than-days must be more than 0 and at most 36500 (a hundred years), got \(olderThanDays)")
            }
        }

        func run() async throws {
            let configuration = try options.resolve()
            let logger = try options.logger("agentry.history", default: .warning)
            let retention = Duration.milliseconds(Int64(olderThanDays * 86_400_000))
            do {
                let total = try await Database.with(configuration.database, logger: logger) { database in
                    try await database.ping()
                    let store = RuntimeStore(database: database, logger: logger)
                    var total = RuntimeStore.PrunedHistory()
                    // Pass after pass until nothing older is left; each statement deletes one batch in its own transaction.
                    while true {
                        let pruned = try await store.pruneHistory(olderThan: retention)
                        total.events += pruned.events
                        total.runs += pruned.runs
                        if pruned.complete { return total }
                        if pruned.events + pruned.runs == 0 {
                            throw Failure(
                                "another process (a worker with --history-retention-days) is deleting the history now; "
                                    + "this one deleted \(total.events) event(s) and \(total.runs) run(s) first; try again later")
                        }
                    }
                }
                print("deleted \(total.events) event(s) and \(total.runs) run(s) older than \(olderThanDays) day(s)")
            } catch let error as Failure {
                throw error
            } catch {
                throw fail(error)
            }
        }
    }
}
