import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

/// Budgets with real `agentry worker` processes: reserved before a run starts, settled from the usage runs report,
/// held by two workers racing, deferred runs resumed in the next period (shortened to seconds), reject and pause.
@Suite("Budgets", .serialized)
struct BudgetTests {
    func agentry(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, arguments)
    }

    /// A day of `seconds` seconds, for the workers and for the test's own reckoning.
    static func calendar(day seconds: Int) -> BudgetCalendar { BudgetCalendar(lengths: [.day: Double(seconds)]) }

    /// Waits until the current period has at least `left` seconds to go, and returns it.
    func freshPeriod(_ calendar: BudgetCalendar, left: Double) async throws -> DateInterval {
        #expect(
            try await TestEnvironment.eventually(timeout: .seconds(30)) {
                calendar.interval(.day, containing: Date()).end.timeIntervalSinceNow >= left
            })
        return calendar.interval(.day, containing: Date())
    }

    /// An exec handler that reports 6 + 4 tokens.
    static let tenTokens = """
        exec:
          command: [/bin/sh, -c, 'sleep 0.2; printf ''{"usage": {"input_tokens": 6, "output_tokens": 4, "model": "stub"}}''']
        """

    @Test(
        "a daily token budget of an llm agent stops runs exactly at the limit with two workers racing, defers the rest and runs them in the next period"
    )
    func deferToNextPeriod() async throws {
        try await withWorkerHarness { h in
            // Each call uses 100 + 20 tokens (the stand-in endpoint's count); the budget holds five. No estimate is
            // declared: the period's first runs reserve the handler's max_tokens, later ones the period's mean run.
            let server = try await ChatCompletionServer()
            defer { server.stop() }
            let perCall = Double(ChatCompletionServer.promptTokens + ChatCompletionServer.completionTokens)
            let id = TestEnvironment.uniqueName("budget-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)",
                    handler: """
                        llm:
                          base_url: \(server.baseURL)
                          model: gpt-test
                          prompt: "Alert {{payload.n}}. ANSWER:fine"
                          max_tokens: \(Int(perCall))
                        """, config: "max_parallel_tasks: 4",
                    extra: "budgets:\n  - {limit: \(Int(perCall * 5)), unit: tokens, per: day, warn_at: 0.8}\n"))
            let seconds = 12
            let calendar = Self.calendar(day: seconds)
            let environment = ["AGENTRY_BUDGET_PERIOD_SECONDS": "day=\(seconds)"]
            let workers = [
                try WorkerProcess(agents: [id], environment: environment, eventLog: true), try WorkerProcess(agents: [id], environment: environment),
            ]
            // Both workers take the agent's events (each counts the other with a heartbeat) before they race.
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    try await h.store.consumingInstances(agentID: id, expiry: .seconds(3))[id] == 2
                })
            let period = try await freshPeriod(calendar, left: 9)
            for n in 0..<8 {
                try await h.bus.publish(Event(type: "work.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let first = try await h.waitForRuns(id, timeout: .seconds(20)) {
                $0.filter { $0.state == .succeeded }.count == 5 && $0.filter { $0.state == .deferred }.count == 3
            }
            #expect(period.end > Date(), "the first period should not have ended before the runs were counted")
            let succeeded = first.filter { $0.state == .succeeded }
            #expect(succeeded.count == 5, "\(Int(perCall * 5)) tokens at \(Int(perCall)) a run is 5 runs: \(first.map(\.state))")
            #expect(succeeded.allSatisfy { $0.usage?.inputTokens == 100 && $0.usage?.outputTokens == 20 }, "each run's usage is recorded")
            #expect(Set(succeeded.compactMap(\.workerID)).count == 2, "both workers ran some")
            let deferred = first.filter { $0.state == .deferred }
            #expect(deferred.count == 3)
            for run in deferred {
                #expect(run.deferReason == "budget")
                #expect(run.message?.contains("agent:\(id) is at its budget") == true, "\(run.message ?? "-")")
                #expect(run.resumeAt.map { abs($0.timeIntervalSince(period.end)) < 0.01 } == true, "deferred to the next period's start")
            }
            let usage = try #require(try await h.store.budgets.current(scope: "agent:\(id)").first { $0.periodStart == period.start })
            #expect(usage.used == perCall * 5)
            #expect(usage.reserved == 0, "every run settled its reservation")
            #expect(usage.runs == 5)
            #expect(await server.received.values.count == 5, "the endpoint was called five times in the first period")

            // The next period: the three deferred runs run, as runs of that period.
            let all = try await h.waitForRuns(id, timeout: .seconds(40)) { $0.filter { $0.state == .succeeded }.count == 8 }
            for worker in workers { await worker.stop() }
            let resumed = all.filter { run in deferred.contains { $0.runID == run.runID } }
            #expect(resumed.count == 3)
            for run in resumed {
                #expect(run.state == .succeeded)
                #expect(run.startedAt >= period.end, "a deferred run starts in the next period")
                #expect(run.steps == 1)
            }
            let log = EventLogStore(database: h.database, logger: TestEnvironment.logger)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(10)) {
                    try await log.recent(limit: 200, type: "budget.exceeded").contains { $0.event.payload["scope"] == .string("agent:\(id)") }
                })
            let exceeded = try await log.recent(limit: 200, type: "budget.exceeded").filter { $0.event.payload["scope"] == .string("agent:\(id)") }
            #expect(exceeded.count == 1, "budget.exceeded is published once per period: \(exceeded.count)")
            let warnings = try await log.recent(limit: 200, type: "budget.warning").filter { $0.event.payload["scope"] == .string("agent:\(id)") }
            #expect(warnings.count == 1, "budget.warning once, at 480 of 600: \(warnings.count)")
            await h.cleanup(id)
        }
    }

    @Test("on_exceeded: reject records the runs over the limit as over_budget; pause pauses the agent and defers the run")
    func rejectAndPause() async throws {
        try await withWorkerHarness { h in
            let reject = TestEnvironment.uniqueName("reject-")
            let pause = TestEnvironment.uniqueName("pause-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: reject, trigger: "work.\(reject)", handler: Self.tenTokens, config: "max_parallel_tasks: 1",
                    extra: "budgets:\n  - {limit: 20, unit: tokens, per: day, estimate: 10, on_exceeded: reject}\n"))
            _ = try await h.publishAgent(
                agentYAML(
                    id: pause, trigger: "work.\(pause)", handler: Self.tenTokens, config: "max_parallel_tasks: 1",
                    extra: "budgets:\n  - {limit: 10, unit: tokens, per: day, estimate: 10, on_exceeded: pause}\n"))
            let environment = ["AGENTRY_BUDGET_PERIOD_SECONDS": "day=3600"]
            let worker = try WorkerProcess(agents: [reject, pause], environment: environment)
            for n in 0..<4 {
                try await h.bus.publish(Event(type: "work.\(reject)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let runs = try await h.waitForRuns(reject, timeout: .seconds(30)) {
                $0.filter { $0.state == .succeeded }.count == 2 && $0.filter { $0.state == .overBudget }.count == 2
            }
            for run in runs where run.state == .overBudget {
                #expect(run.message?.contains("over budget: agent:\(reject)") == true, "\(run.message ?? "-")")
                #expect(run.message?.contains("on_exceeded: reject") == true)
            }
            for n in 0..<2 {
                try await h.bus.publish(Event(type: "work.\(pause)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let paused = try await h.waitForRuns(pause, timeout: .seconds(30)) {
                $0.filter { $0.state == .succeeded }.count == 1 && $0.filter { $0.state == .deferred }.count == 1
            }
            #expect(paused.first { $0.state == .deferred }?.message?.contains("paused") == true)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(10)) {
                    try await h.store.activeAgents().first { $0.agentID == pause }?.desired == .paused
                })
            await worker.stop()
            await h.cleanup(reject)
            await h.cleanup(pause)
        }
    }

    @Test("a budget's period is shown by agentry budgets, agents show, GET /api/budgets and /metrics")
    func shown() async throws {
        try await withAdminServer { a in
            let h = a.worker
            let id = TestEnvironment.uniqueName("shown-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)", handler: Self.tenTokens,
                    extra: "budgets:\n  - {limit: 100, unit: tokens, per: month, on_exceeded: reject}\n"))
            let worker = try WorkerProcess(agents: [id])
            for n in 0..<2 {
                try await h.bus.publish(Event(type: "work.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            _ = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.filter { $0.state == .succeeded }.count == 2 }
            await worker.stop()
            let line = "agent:\(id)  20 / 100 tokens per month (20%), 2 runs"
            let list = try agentry(["budgets"])
            #expect(list.status == 0 && list.output.contains(line), "\(list.output)")
            #expect(list.output.contains("on_exceeded: reject"))
            let show = try agentry(["agents", "show", id])
            #expect(show.output.contains("budget: \(line)"), "\(show.output)")
            let json = try JSON.parse(try agentry(["budgets", "--json"]).output)
            let mine = json[path: "budgets"]?.arrayValue?.first { $0[path: "scope"]?.stringValue == "agent:\(id)" }
            #expect(mine?[path: "used"]?.numberValue == 20 && mine?[path: "runs"]?.intValue == 2, "\(json)")
            let api = try await a.request(.GET, "/api/budgets?agent=\(id)")
            #expect(api.status == 200, "\(api.text)")
            let budget = api.json?[path: "budgets"]?.arrayValue?.first
            #expect(budget?[path: "scope"]?.stringValue == "agent:\(id)" && budget?[path: "used"]?.numberValue == 20, "\(api.text)")
            #expect(budget?[path: "limit"]?.numberValue == 100 && budget?[path: "at_limit"] == .bool(false))
            #expect(try await a.request(.GET, "/api/budgets?agent=no-such-\(id)").status == 404)
            let exported = try await TestEnvironment.eventually(timeout: .seconds(40)) {
                let metrics = try await a.request(.GET, "/metrics").text
                return metrics.split(separator: "\n").contains {
                    $0.hasPrefix("agentry_budget_used{") && $0.contains("scope=\"agent:\(id)\"") && $0.hasSuffix(" 20.0")
                }
            }
            let budgetLines = try await a.request(.GET, "/metrics").text.split(separator: "\n").filter { $0.contains(id) || $0.contains("budget") }
            #expect(exported, "/metrics exports agentry_budget_used of agent:\(id): \(budgetLines)")
            await h.cleanup(id)
        }
    }
}
