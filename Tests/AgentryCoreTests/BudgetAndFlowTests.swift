import Foundation
import Testing

@testable import AgentryCore

@Suite("budgets and flow")
struct BudgetAndFlowTests {
    func problems(_ yaml: String) -> [ValidationProblem] {
        do {
            _ = try AgentDefinition.parse(yaml: yaml)
            return []
        } catch {
            return error.problems
        }
    }

    @Test("budgets and flow read, with their defaults, and are written back as read (YAML and JSON)")
    func parsesAndWrites() throws {
        let parsed = try AgentDefinition.parse(
            yaml: base + """
                budgets:
                  - {limit: 50000, unit: tokens, per: day}
                  - {limit: 5, unit: cost, per: month, currency: EUR, on_exceeded: reject, warn_at: 0.5, estimate: 0.02}
                flow:
                  key: "{{payload.device_id}}"
                  concurrency: 1
                  rate: {limit: 10, per: minute}
                  debounce_seconds: 2.5
                  expire_after_seconds: 600

                """)
        #expect(
            parsed.budgets == [
                Budget(limit: 50000, unit: .tokens, per: .day),
                Budget(limit: 5, unit: .cost, per: .month, onExceeded: .reject, warnAt: 0.5, estimate: 0.02, currency: "EUR"),
            ])
        #expect(parsed.budgets[0].onExceeded == .defer && parsed.budgets[0].warnAt == 0.8, "defaults: defer, warn at 80%")
        #expect(
            parsed.flow
                == FlowControl(
                    key: "{{payload.device_id}}", concurrency: 1, rate: .init(limit: 10, per: .minute), debounceSeconds: 2.5,
                    expireAfterSeconds: 600))
        #expect(try AgentDefinition.parse(yaml: parsed.yaml()) == parsed)
        #expect(try AgentDefinition.parse(yaml: JSON.serialize(parsed.jsonValue())) == parsed)
        let event = Event(type: "alert.probe", payload: ["device_id": "tv-1"], source: "test")
        #expect(parsed.flow?.key(for: event) == "tv-1")
        #expect(parsed.flow?.bucketKey(for: "tv-1") == "tv-1", "a rate without scope is per key when the flow has one")
        let plain = try AgentDefinition.parse(yaml: base)
        #expect(plain.budgets.isEmpty && plain.flow == nil)
        #expect(!plain.yaml().contains("budgets") && !plain.yaml().contains("flow"))
    }

    @Test("mistakes are reported with their place and a way out")
    func problemsReported() {
        let found = problems(
            base + """
                budgets:
                  - {limit: 0, unit: token, per: week}
                  - {unit: tokens, per: day, on_exceeded: drop, warn_at: 2}
                  - {limit: 5, unit: tokens, per: day, currency: USD}
                flow:
                  concurrency: 2
                  rate: {limit: 3, per: fortnight, scope: key}
                  debounce_seconds: -1

                """)
        func has(_ path: String, _ text: String) -> Bool { found.contains { $0.path == path && $0.message.contains(text) } }
        #expect(has("budgets[0].limit", "expected a positive amount"), "\(found)")
        #expect(found.contains { $0.path == "budgets[0].unit" && $0.suggestion == "did you mean 'tokens'?" }, "\(found)")
        #expect(has("budgets[0].per", "expected one of hour, day, month"))
        #expect(has("budgets[1].limit", "missing required field 'limit'"))
        #expect(has("budgets[1].on_exceeded", "expected one of defer, reject, pause"))
        #expect(has("budgets[1].warn_at", "from 0 (no warning) to 1"))
        #expect(has("budgets[2].currency", "a token budget has no currency"))
        #expect(has("flow.concurrency", "flow has no key"))
        #expect(has("flow.rate.per", "expected one of second, minute, hour, day"))
        #expect(has("flow.rate.scope", "scope: key needs flow.key"))
        #expect(has("flow.debounce_seconds", "expected a positive number of seconds"))
        #expect(found.allSatisfy { $0.line != nil }, "every problem has its line")
        let twice = problems(base + "budgets:\n  - {limit: 1, unit: tokens, per: day}\n  - {limit: 2, unit: tokens, per: day}\n")
        #expect(twice.contains { $0.path == "budgets[1]" && $0.message.contains("a second budget of tokens per day") }, "\(twice)")
        let constant = problems(base + "flow:\n  key: all\n  concurrency: 1\n")
        #expect(constant.contains { $0.path == "flow.key" && $0.message.contains("holds no template") }, "\(constant)")
    }

    @Test("budget periods: calendar hours, days and months in a time zone, or shortened periods from the epoch")
    func periods() throws {
        let paris = try BudgetCalendar.from(timeZone: "Europe/Paris", lengths: nil)
        let instant = try #require(Timestamp.parse("2026-03-29T12:30:00Z"))
        let day = paris.interval(.day, containing: instant)
        #expect(Timestamp.format(day.start) == "2026-03-28T23:00:00.000Z", "midnight in Paris (UTC+1 before the change)")
        #expect(day.duration == 23 * 3600, "the day the clocks go forward has 23 hours")
        let month = BudgetCalendar().interval(.month, containing: instant)
        #expect(Timestamp.format(month.start) == "2026-03-01T00:00:00.000Z" && Timestamp.format(month.end) == "2026-04-01T00:00:00.000Z")
        let hour = BudgetCalendar().interval(.hour, containing: instant)
        #expect(Timestamp.format(hour.start) == "2026-03-29T12:00:00.000Z")
        let short = try BudgetCalendar.from(timeZone: nil, lengths: "day=10, hour=2")
        let tenSeconds = short.interval(.day, containing: Date(timeIntervalSince1970: 1_000_005))
        #expect(tenSeconds.start == Date(timeIntervalSince1970: 1_000_000) && tenSeconds.duration == 10)
        #expect(throws: BudgetCalendarError.self) { try BudgetCalendar.from(timeZone: "Mars/Olympus", lengths: nil) }
        #expect(throws: BudgetCalendarError.self) { try BudgetCalendar.from(timeZone: nil, lengths: "week=5") }
    }

    @Test("an applied budget survives its JSON form")
    func appliedJSON() {
        let applied = [
            AppliedBudget(scope: "agent:triage", budget: Budget(limit: 100, unit: .tokens, per: .hour, estimate: 10)),
            AppliedBudget(scope: "pool:alerts", budget: Budget(limit: 5, unit: .cost, per: .month, onExceeded: .pause, currency: "EUR")),
        ]
        #expect(AppliedBudget.list(fromJSON: AppliedBudget.json(applied)) == applied)
        #expect(applied[0].agentID == "triage" && applied[1].agentID == nil)
        #expect(AppliedBudget.list(fromJSON: "not json").isEmpty)
    }
}
