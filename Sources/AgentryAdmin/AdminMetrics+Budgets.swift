import AgentryCore
import AgentryRuntime
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

/// Every budget's current period as gauges labelled `scope`, `unit` and `per`: read from PostgreSQL at scrape time,
/// at most every ``budgetsInterval`` (a scrape in between renders the last values).
extension AdminMetrics {
    static let budgetsInterval: Duration = .seconds(15)

    func refreshBudgets(_ dependencies: AdminDependencies) async {
        let now = ContinuousClock.now
        let due = budgetsRead.withLockedValue { last -> Bool in
            guard last.map({ now - $0 >= Self.budgetsInterval }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        do {
            let statuses = try await dependencies.registry.budgetOverview(calendar: dependencies.budgetCalendar).all()
            for status in statuses { Self.record(status) }
        } catch {
            budgetsRead.withLockedValue { $0 = nil }
            dependencies.logger.warning("cannot read the budgets for /metrics", metadata: ["error": "\(error)"])
        }
    }

    static func record(_ s: BudgetStatus) {
        let dimensions = [("scope", s.scope), ("unit", s.budget.unit.rawValue), ("per", s.budget.per.rawValue)]
        Gauge(label: "agentry_budget_limit", dimensions: dimensions).record(s.budget.limit)
        Gauge(label: "agentry_budget_used", dimensions: dimensions).record(s.used)
        Gauge(label: "agentry_budget_reserved", dimensions: dimensions).record(s.reserved)
        Gauge(label: "agentry_budget_deferred_runs", dimensions: dimensions).record(s.deferred)
    }
}
