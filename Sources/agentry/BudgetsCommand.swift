import AgentryCore
import AgentryRuntime
import ArgumentParser
import Foundation

extension Agentry {
    /// `agentry budgets`: every budget's current period.
    struct Budgets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every budget (the published agents' and the event pools') in its current period.",
            discussion: """
                One line per budget: what its period spent of the limit, what running runs reserved, how many runs it \
                counted, when the period ends (AGENTRY_BUDGET_TIMEZONE, default UTC), what happens at the limit, and how \
                many runs wait for the next period.
                """)
        @OptionGroup var options: GlobalOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let calendar = try options.resolve().budgetCalendar
            let statuses: [BudgetStatus]
            do {
                statuses = try await withRegistry(options) { try await $0.budgetOverview(calendar: calendar).all() }
            } catch {
                throw fail(error)
            }
            if json {
                printJSON(.object(["budgets": .array(statuses.map(\.jsonValue))]))
                return
            }
            if statuses.isEmpty {
                print("no budgets: declare them under an agent's budgets, or an event pool's under pool_budgets in the topology")
                return
            }
            for status in statuses { print(status.line) }
        }
    }
}
