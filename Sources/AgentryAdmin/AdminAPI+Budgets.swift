import AgentryCore
import AgentryRuntime
import Foundation

/// Budgets: each one's current period (see ``BudgetOverview``).
extension AdminAPI {
    func listBudgets(_ input: Operations.ListBudgets.Input) async throws -> Operations.ListBudgets.Output {
        let overview = dependencies.registry.budgetOverview(calendar: dependencies.budgetCalendar)
        let statuses: [BudgetStatus]
        if let agent = input.query.agent {
            guard let (_, definition) = try await dependencies.registry.definition(agentID: agent) else {
                throw AdminError.notFound("no published agent \(agent)")
            }
            statuses = try await overview.of(definition)
        } else {
            statuses = try await overview.all()
        }
        return .ok(.init(body: .json(.init(budgets: statuses.map(\.jsonValue)))))
    }
}
