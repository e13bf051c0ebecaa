public import Foundation

/// A spending limit per calendar period, declared under an agent's `budgets` (or an event pool's, in the topology):
///
/// ```yaml
/// budgets:
///   - limit: 50000
///     unit: tokens        # tokens (input + output) or cost
///     per: day            # hour, day or month, calendar periods in the configured time zone
///     on_exceeded: defer  # defer (wait for the next period), reject (recorded over_budget) or pause the agent
///     warn_at: 0.8        # publish budget.warning at this share of the limit (0: never); default 0.8
///     estimate: 800       # reserved for each run before it starts; default: the period's mean run so far
/// ```
///
/// A run starts only while the budget's spent and reserved amounts together are below the limit; it reserves its
/// estimate, and its actual usage replaces the reservation when it ends. So concurrent workers cannot overspend by
/// more than one run's estimate (when runs use no more than their estimate).
public struct Budget: Sendable, Hashable {
    public enum Unit: String, Sendable, Hashable, CaseIterable {
        /// Input plus output tokens.
        case tokens
        /// Cost in ``Budget/currency``.
        case cost
    }

    public enum Period: String, Sendable, Hashable, CaseIterable {
        case hour, day, month
    }

    public enum Policy: String, Sendable, Hashable, CaseIterable {
        /// The run waits, holding no slot, until the next period.
        case `defer`
        /// The run ends `over_budget`.
        case reject
        /// The agent is paused (an operator resumes it) and the run waits for the next period.
        case pause
    }

    public var limit: Double
    public var unit: Unit
    public var per: Period
    public var onExceeded: Policy
    /// Share of the limit at which `budget.warning` is published; 0 means never. Default 0.8.
    public var warnAt: Double
    /// What a run reserves before it starts; nil means the mean of the period's runs so far (or, with none yet, the
    /// llm handler's `max_tokens` for a token budget, else nothing).
    public var estimate: Double?
    /// The currency of a cost budget (runs reporting another currency do not count); default USD.
    public var currency: String

    public init(
        limit: Double, unit: Unit, per: Period, onExceeded: Policy = .defer, warnAt: Double = 0.8, estimate: Double? = nil,
        currency: String = "USD"
    ) {
        self.limit = limit
        self.unit = unit
        self.per = per
        self.onExceeded = onExceeded
        self.warnAt = warnAt
        self.estimate = estimate
        self.currency = currency
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case limit, unit, per
        case onExceeded = "on_exceeded"
        case warnAt = "warn_at"
        case estimate, currency
    }

    /// `50000 tokens per day`, `5 USD per month`.
    public var summary: String {
        "\(limit.budgetText) \(unit == .tokens ? "tokens" : currency) per \(per.rawValue)"
    }
}

/// Where budget periods begin and end: calendar hours, days and months in a time zone, or, when a period is given a
/// length (a test's shortened day), consecutive periods of that many seconds from the Unix epoch.
public struct BudgetCalendar: Sendable, Hashable {
    public var timeZone: TimeZone
    public var lengths: [Budget.Period: Double]

    public init(timeZone: TimeZone = TimeZone(identifier: "UTC")!, lengths: [Budget.Period: Double] = [:]) {
        self.timeZone = timeZone
        self.lengths = lengths
    }

    /// The period of kind `period` that holds `date`.
    public func interval(_ period: Budget.Period, containing date: Date) -> DateInterval {
        if let seconds = lengths[period], seconds > 0 {
            let start = (date.timeIntervalSince1970 / seconds).rounded(.down) * seconds
            return DateInterval(start: Date(timeIntervalSince1970: start), duration: seconds)
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let component: Calendar.Component =
            switch period {
            case .hour: .hour
            case .day: .day
            case .month: .month
            }
        return calendar.dateInterval(of: component, for: date) ?? DateInterval(start: date, duration: 3600)
    }

    /// Reads `AGENTRY_BUDGET_TIMEZONE` (an IANA name, default UTC) and `AGENTRY_BUDGET_PERIOD_SECONDS`
    /// (`day=5,hour=2`: shortened periods, for tests and demonstrations).
    public static func from(timeZone: String?, lengths: String?) throws -> BudgetCalendar {
        var calendar = BudgetCalendar()
        if let name = timeZone, !name.isEmpty {
            guard let zone = TimeZone(identifier: name) else {
                throw BudgetCalendarError("AGENTRY_BUDGET_TIMEZONE: '\(name)' is not a time zone name (e.g. UTC, Europe/Paris)")
            }
            calendar.timeZone = zone
        }
        for item in (lengths ?? "").split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let period = Budget.Period(rawValue: parts[0]), let seconds = Double(parts[1]), seconds > 0 else {
                throw BudgetCalendarError(
                    "AGENTRY_BUDGET_PERIOD_SECONDS: '\(item)' is not PERIOD=SECONDS with PERIOD one of hour, day, month (e.g. day=5)")
            }
            calendar.lengths[period] = seconds
        }
        return calendar
    }
}

public struct BudgetCalendarError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Double {
    /// `50000`, `2.5`: an amount as a person writes it.
    public var budgetText: String {
        if self == rounded(), abs(self) < 1e15 { return String(Int64(self)) }
        return String(format: "%.4g", self)
    }
}

/// A budget as it applies to a run: whose it is (`agent:<id>` or `pool:<name>`) and its terms. A run keeps the list
/// of those that applied when it started (its agent's, its pools', its root run's), so that every step of it, and
/// every child of it, counts against them.
public struct AppliedBudget: Sendable, Hashable {
    public var scope: String
    public var budget: Budget

    public init(scope: String, budget: Budget) {
        self.scope = scope
        self.budget = budget
    }

    /// The agent to pause for `on_exceeded: pause` (the owner of an agent budget; nil for a pool's).
    public var agentID: String? { scope.hasPrefix("agent:") ? String(scope.dropFirst(6)) : nil }

    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "scope": .string(scope), "limit": .double(budget.limit), "unit": .string(budget.unit.rawValue), "per": .string(budget.per.rawValue),
            "on_exceeded": .string(budget.onExceeded.rawValue), "warn_at": .double(budget.warnAt), "currency": .string(budget.currency),
        ]
        if let estimate = budget.estimate { object["estimate"] = .double(estimate) }
        return .object(object)
    }

    public init?(json: JSONValue) {
        guard case .object(let o) = json, let scope = o["scope"]?.stringValue, let limit = o["limit"]?.numberValue,
            let unit = o["unit"]?.stringValue.flatMap(Budget.Unit.init(rawValue:)),
            let per = o["per"]?.stringValue.flatMap(Budget.Period.init(rawValue:))
        else { return nil }
        var budget = Budget(limit: limit, unit: unit, per: per)
        if let policy = o["on_exceeded"]?.stringValue.flatMap(Budget.Policy.init(rawValue:)) { budget.onExceeded = policy }
        if let share = o["warn_at"]?.numberValue { budget.warnAt = share }
        budget.estimate = o["estimate"]?.numberValue
        if let currency = o["currency"]?.stringValue { budget.currency = currency }
        self.init(scope: scope, budget: budget)
    }

    /// A list kept as JSON text (see ``jsonValue``); entries that do not read are left out.
    public static func list(fromJSON text: String?) -> [AppliedBudget] {
        guard let text, case .array(let items)? = try? JSON.parse(Array(text.utf8)) else { return [] }
        return items.compactMap(AppliedBudget.init(json:))
    }

    public static func json(_ list: [AppliedBudget]) -> String { JSON.serialize(.array(list.map(\.jsonValue))) }
}
