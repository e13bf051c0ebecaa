import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

/// An agent with a monthly budget of 20 tokens (`on_exceeded: defer`, each run estimated at 10), one run at a time,
/// started by `spend.<id>` events; each run reports 6 + 4 tokens. Two runs spend the budget; a third waits for the
/// next month, deferred.
func budgetedAgentYAML(_ id: String) -> String {
    agentYAML(
        id: id, trigger: "spend.\(id)",
        handler: """
            exec:
              command: [/bin/sh, -c, 'cat >/dev/null; printf ''{"usage": {"input_tokens": 6, "output_tokens": 4, "model": "stub"}}''']
            """,
        config: "max_parallel_tasks: 1", extra: "budgets:\n  - {limit: 20, unit: tokens, per: month, estimate: 10, warn_at: 0.8}\n")
}

@Suite("Status hub: budgets", .serialized)
struct StatusBudgetsTests {
    @Test("the status WebSocket's budgets kind shows a budget's use as a worker spends it, at its limit with the run it deferred")
    func budgetsKind() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("spend-")
            let scope = "agent:\(id)"
            _ = try await a.worker.publishAgent(budgetedAgentYAML(id))
            let listener = StatusListener(port: a.port)
            defer { listener.stop() }
            let snapshot = await listener.first(within: .seconds(10)) { $0[path: "type"] == "snapshot" }
            let before = snapshot?[path: "budgets"]?.arrayValue?.first { $0[path: "scope"]?.stringValue == scope }
            #expect(before != nil, "the snapshot carries the budgets kind with the agent's budget: \(String(describing: snapshot?[path: "budgets"]))")
            #expect(before?[path: "used"]?.numberValue == 0 && before?[path: "at_limit"] == .bool(false))
            #expect(before?[path: "limit"]?.numberValue == 20 && before?[path: "unit"] == "tokens" && before?[path: "per"] == "month")

            let worker = try WorkerProcess(agents: [id])
            for n in 0..<3 {
                try await a.worker.bus.publish(Event(type: "spend.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let spent = await listener.first(within: .seconds(40)) { message in
                message[path: "type"] == "budgets"
                    && message[path: "budgets"]?.arrayValue?.contains {
                        $0[path: "scope"]?.stringValue == scope && $0[path: "used"]?.numberValue == 20 && $0[path: "deferred_runs"]?.intValue == 1
                    } == true
            }
            let budget = try #require(
                spent?[path: "budgets"]?.arrayValue?.first { $0[path: "scope"]?.stringValue == scope },
                "a `budgets` message shows the 20 tokens spent and the deferred run")
            #expect(budget[path: "at_limit"] == .bool(true), "\(budget)")
            #expect(budget[path: "runs"]?.intValue == 2)
            #expect(budget[path: "reserved"]?.numberValue == 0, "both runs settled what they reserved")
            #expect(budget[path: "on_exceeded"] == "defer")
            let periodEnd = try #require(budget[path: "period_end"]?.stringValue.flatMap(Timestamp.parse))
            #expect(periodEnd > Date(), "the period shown is the current one")

            // The run the budget deferred is in the runs kind with its state, its reason and when it is tried again.
            let runsMessage = await listener.first(within: .seconds(10)) { message in
                message[path: "type"] == "runs"
                    && message[path: "runs"]?.arrayValue?.contains { $0[path: "agent_id"]?.stringValue == id && $0[path: "state"] == "deferred" }
                        == true
            }
            let deferred = try #require(
                runsMessage?[path: "runs"]?.arrayValue?.first { $0[path: "agent_id"]?.stringValue == id && $0[path: "state"] == "deferred" },
                "the deferred run reaches the WebSocket as a `runs` message")
            #expect(deferred[path: "defer_reason"] == "budget", "\(deferred)")
            #expect(deferred[path: "message"]?.stringValue?.contains("\(scope) is at its budget") == true, "\(deferred)")
            let resumeAt = deferred[path: "resume_at"]?.stringValue.flatMap(Timestamp.parse)
            #expect(resumeAt.map { abs($0.timeIntervalSince(periodEnd)) < 1 } == true, "deferred to the next period: \(deferred)")
            let api = try await a.request(.GET, "/api/runs?agent_id=\(id)&state=deferred")
            #expect(api.status == 200 && api.json?[path: "count"]?.intValue == 1, "the API lists runs by state deferred: \(api.text)")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
