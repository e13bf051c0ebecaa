public import AgentryCore
public import Foundation
import Logging
import PostgresNIO

/// One budget's period, as `budget_usage` keeps it.
public struct BudgetUsage: Sendable, Hashable {
    public var scope: String
    public var unit: Budget.Unit
    public var period: Budget.Period
    public var periodStart: Date
    public var periodEnd: Date
    public var limit: Double
    public var currency: String?
    public var used: Double
    public var reserved: Double
    public var runs: Int
    public var warnedAt: Date?
    public var exceededAt: Date?
}

/// A threshold a budget crossed, to be announced once per period (`budget.warning`, `budget.exceeded`).
public struct BudgetNotice: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable { case warning, exceeded }
    public var kind: Kind
    public var applied: AppliedBudget
    public var usage: BudgetUsage

    public init(kind: Kind, applied: AppliedBudget, usage: BudgetUsage) {
        self.kind = kind
        self.applied = applied
        self.usage = usage
    }
}

/// Budgets' accounting: a run reserves its estimate of every budget that applies to it before it starts (refused
/// while the spent and reserved amounts reach the limit), and its usage replaces the reservation when it ends. The
/// rows of one budget's period are locked for the check, so workers starting runs at the same moment take turns.
public struct BudgetStore: Sendable {
    let database: Database
    let logger: Logger

    /// What reserving found.
    public enum Reservation: Sendable, Hashable {
        case reserved
        /// `applied` is at its limit for the period; `notice` is set the first time in the period (publish it).
        case exceeded(AppliedBudget, BudgetUsage, notice: Bool)
    }

    /// A budget's current period, for `run` starting now.
    public struct Charge: Sendable, Hashable {
        public var applied: AppliedBudget
        public var period: DateInterval
        /// What the run reserves when the budget has no estimate and its period has no runs yet.
        public var fallbackEstimate: Double

        public init(applied: AppliedBudget, period: DateInterval, fallbackEstimate: Double) {
            self.applied = applied
            self.period = period
            self.fallbackEstimate = fallbackEstimate
        }
    }

    /// Reserves each charge's estimate for `runID`, or none when one budget is at its limit. Records the budgets that
    /// apply with the run.
    public func reserve(_ runID: UUID, charges: [Charge]) async throws -> Reservation {
        let logger = self.logger
        // Always in the same order, so that two runs locking the same rows cannot deadlock.
        let ordered = charges.sorted {
            ($0.applied.scope, $0.applied.budget.unit.rawValue, $0.applied.budget.per.rawValue) < (
                $1.applied.scope, $1.applied.budget.unit.rawValue, $1.applied.budget.per.rawValue
            )
        }
        let applied = AppliedBudget.json(charges.map(\.applied))
        do {
            return try await database.withTransaction(logger: logger) { connection in
                var rows: [(Charge, BudgetUsage)] = []
                for charge in ordered {
                    let usage = try await Self.lockUsage(charge, on: connection, logger: logger)
                    if usage.used + usage.reserved >= charge.applied.budget.limit {
                        var notice = false
                        if usage.exceededAt == nil {
                            try await connection.queryAll(
                                "UPDATE budget_usage SET exceeded_at = now() WHERE scope = \(charge.applied.scope) AND unit = \(charge.applied.budget.unit.rawValue) AND period = \(charge.applied.budget.per.rawValue) AND period_start = \(charge.period.start)",
                                logger: logger)
                            notice = true
                        }
                        return .exceeded(charge.applied, usage, notice: notice)
                    }
                    rows.append((charge, usage))
                }
                for (charge, usage) in rows {
                    let estimate = charge.applied.budget.estimate ?? (usage.runs > 0 ? usage.used / Double(usage.runs) : charge.fallbackEstimate)
                    let b = charge.applied.budget
                    try await connection.queryAll(
                        """
                        INSERT INTO budget_reservations (run_id, scope, unit, period, period_start, amount)
                        VALUES (\(runID), \(charge.applied.scope), \(b.unit.rawValue), \(b.per.rawValue), \(charge.period.start), \(estimate))
                        ON CONFLICT (run_id, scope, unit, period) DO NOTHING
                        """, logger: logger)
                    try await connection.queryAll(
                        "UPDATE budget_usage SET reserved = reserved + \(estimate), updated_at = now() WHERE scope = \(charge.applied.scope) AND unit = \(charge.applied.budget.unit.rawValue) AND period = \(charge.applied.budget.per.rawValue) AND period_start = \(charge.period.start)",
                        logger: logger)
                }
                try await connection.queryAll("UPDATE task_runs SET budgets = \(applied)::jsonb WHERE run_id = \(runID)", logger: logger)
                return .reserved
            }
        } catch {
            throw StoreError(.query, "cannot reserve the budgets of run \(runID)", cause: error)
        }
    }

    /// Counts a run's usage (one step's) against its budgets in their current periods and gives back what it
    /// reserved; returns the thresholds crossed for the first time in their period.
    public func settle(
        _ runID: UUID, charges: [Charge], tokens: Double, cost: Double?, currency: String?
    ) async throws -> [BudgetNotice] {
        let logger = self.logger
        let ordered = charges.sorted {
            ($0.applied.scope, $0.applied.budget.unit.rawValue, $0.applied.budget.per.rawValue) < (
                $1.applied.scope, $1.applied.budget.unit.rawValue, $1.applied.budget.per.rawValue
            )
        }
        do {
            return try await database.withTransaction(logger: logger) { connection in
                // What the run reserved, given back in the period it was reserved in.
                for try await (scope, unit, period, start, amount) in try await connection.queryAll(
                    """
                    DELETE FROM budget_reservations WHERE run_id = \(runID)
                    RETURNING scope, unit, period, period_start, amount::float8
                    """, logger: logger
                ).decode((String, String, String, Date, Double).self) {
                    try await connection.queryAll(
                        """
                        UPDATE budget_usage SET reserved = greatest(0, reserved - \(amount)), updated_at = now()
                        WHERE scope = \(scope) AND unit = \(unit) AND period = \(period) AND period_start = \(start)
                        """, logger: logger)
                }
                var notices: [BudgetNotice] = []
                for charge in ordered {
                    let b = charge.applied.budget
                    let amount: Double
                    switch b.unit {
                    case .tokens: amount = tokens
                    case .cost: amount = (currency == nil || currency == b.currency) ? (cost ?? 0) : 0
                    }
                    var usage = try await Self.lockUsage(charge, on: connection, logger: logger)
                    usage.used += amount
                    usage.runs += 1
                    let warn = b.warnAt > 0 && usage.warnedAt == nil && usage.used >= b.warnAt * b.limit
                    let exceeded = usage.exceededAt == nil && usage.used >= b.limit
                    try await connection.queryAll(
                        """
                        UPDATE budget_usage SET used = used + \(amount), runs = runs + 1, updated_at = now(),
                               warned_at = CASE WHEN \(warn) THEN now() ELSE warned_at END,
                               exceeded_at = CASE WHEN \(exceeded) THEN now() ELSE exceeded_at END
                        WHERE scope = \(charge.applied.scope) AND unit = \(charge.applied.budget.unit.rawValue) AND period = \(charge.applied.budget.per.rawValue) AND period_start = \(charge.period.start)
                        """, logger: logger)
                    if warn { notices.append(BudgetNotice(kind: .warning, applied: charge.applied, usage: usage)) }
                    if exceeded { notices.append(BudgetNotice(kind: .exceeded, applied: charge.applied, usage: usage)) }
                }
                return notices
            }
        } catch {
            throw StoreError(.query, "cannot count the usage of run \(runID) against its budgets", cause: error)
        }
    }

    /// Gives back what a run reserved without counting anything (it did not run: deferred, cancelled).
    public func release(_ runID: UUID) async throws {
        try await database.each(
            "give back the budget reservations of run \(runID)", writes: true,
            """
            WITH gone AS (DELETE FROM budget_reservations WHERE run_id = \(runID) RETURNING scope, unit, period, period_start, amount)
            UPDATE budget_usage u SET reserved = greatest(0, u.reserved - g.amount), updated_at = now()
            FROM gone g WHERE u.scope = g.scope AND u.unit = g.unit AND u.period = g.period AND u.period_start = g.period_start
            """, logger: logger
        ) { _ in }
    }

    /// Reservations of runs that ended without settling them (their worker died): given back. Called by the scheduler's
    /// leader.
    public func releaseAbandoned(olderThan age: Duration) async throws -> Int {
        var count = 0
        try await database.each(
            "give back abandoned budget reservations", writes: true,
            """
            WITH gone AS (
                DELETE FROM budget_reservations b WHERE b.created_at < now() - make_interval(secs => \(age.inSeconds))
                  AND NOT EXISTS (SELECT 1 FROM task_runs r WHERE r.run_id = b.run_id AND r.state IN ('running', 'resuming'))
                RETURNING scope, unit, period, period_start, amount
            ), given AS (
                UPDATE budget_usage u SET reserved = greatest(0, u.reserved - g.amount), updated_at = now()
                FROM gone g WHERE u.scope = g.scope AND u.unit = g.unit AND u.period = g.period AND u.period_start = g.period_start
            )
            SELECT count(*)::int4 FROM gone
            """, logger: logger
        ) { row in count = Int(try row.decode(Int32.self)) }
        return count
    }

    /// The periods that have not ended (each budget's current one, where it has a row), by scope.
    public func current(scope: String? = nil) async throws -> [BudgetUsage] {
        var result: [BudgetUsage] = []
        try await database.each(
            "read the budgets' current periods",
            """
            SELECT \(unescaped: Self.columns) FROM budget_usage
            WHERE period_end > now() AND (\(scope)::text IS NULL OR scope = \(scope))
            ORDER BY scope, unit, period
            """, logger: logger
        ) { row in result.append(try Self.usage(row)) }
        return result
    }

    static let columns = """
        scope, unit, period, period_start, period_end, limit_amount::float8, currency, used::float8, reserved::float8, runs, warned_at, exceeded_at
        """

    static func usage(_ row: PostgresRow) throws -> BudgetUsage {
        let (scope, unit, period, start, end, limit, currency, used, reserved, runs, warned, exceeded) = try row.decode(
            (String, String, String, Date, Date, Double, String?, Double, Double, Int, Date?, Date?).self)
        return BudgetUsage(
            scope: scope, unit: Budget.Unit(rawValue: unit) ?? .tokens, period: Budget.Period(rawValue: period) ?? .day, periodStart: start,
            periodEnd: end, limit: limit, currency: currency, used: used, reserved: reserved, runs: runs, warnedAt: warned, exceededAt: exceeded)
    }

    /// The charge's row for its period, created when missing (with the budget's limit, updated when it changed), locked.
    static func lockUsage(_ charge: Charge, on connection: PostgresConnection, logger: Logger) async throws -> BudgetUsage {
        let b = charge.applied.budget
        let currency: String? = b.unit == .cost ? b.currency : nil
        try await connection.queryAll(
            """
            INSERT INTO budget_usage (scope, unit, period, period_start, period_end, limit_amount, currency)
            VALUES (\(charge.applied.scope), \(b.unit.rawValue), \(b.per.rawValue), \(charge.period.start), \(charge.period.end), \(b.limit), \(currency))
            ON CONFLICT (scope, unit, period, period_start) DO UPDATE SET limit_amount = EXCLUDED.limit_amount
            WHERE budget_usage.limit_amount <> EXCLUDED.limit_amount
            """, logger: logger)
        var found: BudgetUsage?
        for try await row in try await connection.queryAll(
            "SELECT \(unescaped: columns) FROM budget_usage WHERE scope = \(charge.applied.scope) AND unit = \(b.unit.rawValue) AND period = \(b.per.rawValue) AND period_start = \(charge.period.start) FOR UPDATE",
            logger: logger)
        {
            found = try usage(row)
        }
        guard let found else { throw StoreError(.query, "the budget row of \(charge.applied.scope) vanished") }
        return found
    }
}

extension RuntimeStore {
    public var budgets: BudgetStore { BudgetStore(database: database, logger: logger) }
}
