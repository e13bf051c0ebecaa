public import AgentryBus
public import AgentryCore
public import AgentryStore
public import Foundation

/// A budget and where it stands in its current period: what `agentry budgets`, `agentry agents show`, the admin API,
/// the status page and `/metrics` show.
public struct BudgetStatus: Sendable, Hashable {
    /// `agent:<id>` or `pool:<name>`.
    public var scope: String
    public var budget: Budget
    public var period: DateInterval
    public var used: Double
    /// Estimates held by runs going on now.
    public var reserved: Double
    /// Runs counted in the period.
    public var runs: Int
    /// Runs of the agents concerned that wait for a budget's next period.
    public var deferred: Int
    /// For a pool's budget: the published agents that draw from the pool.
    public var agents: [String]

    /// Whether a run would be refused now.
    public var atLimit: Bool { used + reserved >= budget.limit }
    /// Spent share of the limit.
    public var share: Double { budget.limit > 0 ? used / budget.limit : 0 }
}

/// Reads the budgets declared (by the published agents' current versions and the topology's pools) with their usage.
public struct BudgetOverview: Sendable {
    let registry: AgentRegistryStore
    let store: RuntimeStore
    let topology: Topology
    let calendar: BudgetCalendar

    public init(registry: AgentRegistryStore, store: RuntimeStore, topology: Topology, calendar: BudgetCalendar) {
        self.registry = registry
        self.store = store
        self.topology = topology
        self.calendar = calendar
    }

    /// Every budget, agents' first (by id), then pools'.
    public func all() async throws -> [BudgetStatus] {
        try await all(of: try await published())
    }

    /// The budgets of `definitions` (the published agents, as ``published()`` reads them) and of the topology's
    /// pools: for a reader that keeps the definitions between readings (the status hub reads the usage every second,
    /// the definitions only when agents change).
    public func all(of definitions: [AgentDefinition]) async throws -> [BudgetStatus] {
        try await statuses(definitions, pools: true)
    }

    /// The current definitions of the published agents that budgets concern (those declaring budgets or drawing from
    /// event pools), in one query.
    public func published() async throws -> [AgentDefinition] {
        try await registry.currentVersionsWithBudgets().compactMap { try? AgentRegistry.decode($0) }
    }

    /// The budgets that apply to one agent: its own and its pools'.
    public func of(_ definition: AgentDefinition) async throws -> [BudgetStatus] {
        try await statuses([definition], pools: false, poolsOf: definition)
    }

    private func statuses(_ definitions: [AgentDefinition], pools: Bool, poolsOf agent: AgentDefinition? = nil) async throws -> [BudgetStatus] {
        let now = Date()
        let usage = try await store.budgets.current()
        let deferred = try await store.flow.deferredCounts()
        func deferredRuns(_ agents: [String]) -> Int {
            deferred.filter { agents.contains($0.agentID) && $0.reason == FlowStore.DeferReason.budget.rawValue }.reduce(0) { $0 + $1.count }
        }
        func status(_ scope: String, _ budget: Budget, agents: [String]) -> BudgetStatus {
            let period = calendar.interval(budget.per, containing: now)
            let row = usage.first {
                $0.scope == scope && $0.unit == budget.unit && $0.period == budget.per && abs($0.periodStart.timeIntervalSince(period.start)) < 0.001
            }
            return BudgetStatus(
                scope: scope, budget: budget, period: period, used: row?.used ?? 0, reserved: row?.reserved ?? 0, runs: row?.runs ?? 0,
                deferred: deferredRuns(agents), agents: agents)
        }
        var result: [BudgetStatus] = []
        for definition in definitions.sorted(by: { $0.metadata.id < $1.metadata.id }) {
            for budget in definition.budgets {
                result.append(status("agent:\(definition.metadata.id)", budget, agents: [definition.metadata.id]))
            }
        }
        let poolNames = pools ? topology.poolBudgets.keys.sorted() : (agent?.referencedPools ?? []).filter { topology.poolBudgets[$0] != nil }
        for pool in poolNames {
            let members = definitions.filter { $0.referencedPools.contains(pool) }.map(\.metadata.id).sorted()
            for budget in topology.poolBudgets[pool] ?? [] {
                result.append(status("pool:\(pool)", budget, agents: members))
            }
        }
        return result
    }
}

extension BudgetStatus {
    /// One line: `agent:triage  1200 / 50000 tokens per day (2%), 800 reserved, 3 runs; until 2026-12-07T00:00:00Z (defer)`.
    public var line: String {
        let unit = budget.unit == .tokens ? "tokens" : budget.currency
        var text =
            "\(scope)  \(used.budgetText) / \(budget.limit.budgetText) \(unit) per \(budget.per.rawValue) (\(Int((share * 100).rounded()))%)"
        if reserved > 0 { text += ", \(reserved.budgetText) reserved" }
        text += ", \(runs) run\(runs == 1 ? "" : "s"); period ends \(Timestamp.format(period.end)); on_exceeded: \(budget.onExceeded.rawValue)"
        if atLimit { text += "; AT LIMIT" }
        if deferred > 0 { text += "; \(deferred) run\(deferred == 1 ? "" : "s") deferred" }
        return text
    }

    /// As the admin API shows it.
    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "scope": .string(scope), "limit": .double(budget.limit), "unit": .string(budget.unit.rawValue), "per": .string(budget.per.rawValue),
            "on_exceeded": .string(budget.onExceeded.rawValue), "warn_at": .double(budget.warnAt),
            "period_start": .string(Timestamp.format(period.start)), "period_end": .string(Timestamp.format(period.end)),
            "used": .double(used), "reserved": .double(reserved), "runs": .int(Int64(runs)), "deferred_runs": .int(Int64(deferred)),
            "at_limit": .bool(atLimit), "agents": .array(agents.map(JSONValue.string)),
        ]
        if budget.unit == .cost { object["currency"] = .string(budget.currency) }
        if let estimate = budget.estimate { object["estimate"] = .double(estimate) }
        return .object(object)
    }
}

extension AgentRegistry {
    /// The budgets of the published agents and of the topology's pools, with their usage.
    public func budgetOverview(calendar: BudgetCalendar) -> BudgetOverview {
        BudgetOverview(registry: store, store: RuntimeStore(database: store.database, logger: logger), topology: topology, calendar: calendar)
    }
}
