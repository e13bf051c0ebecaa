import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

/// Feedback on runs from the CLI, the admin API and `run.feedback` events, with real workers, and the per-version
/// statistics it shows up in (`agentry agents stats`, `GET /api/agents/{id}/stats`, `/metrics`).
@Suite("Feedback", .serialized)
struct FeedbackTests {
    func agentry(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, arguments)
    }

    func yaml(_ id: String, script: String = "printf '{}'", config: String = "") -> String {
        agentYAML(
            id: id, trigger: "feedback.\(id)",
            handler: """
                exec:
                  command: [/bin/sh, -c, "\(script)"]
                """, config: config)
    }

    /// Publishes `count` events for the agent and returns its runs once they all succeeded.
    func succeededRuns(_ h: WorkerHarness, _ id: String, count: Int) async throws -> [TaskRun] {
        for _ in 0..<count { try await h.bus.publish(Event(type: "feedback.\(id)", payload: [:], source: "test")) }
        let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.filter { $0.state == .succeeded }.count == count }
        let succeeded = runs.filter { $0.state == .succeeded }.sorted { $0.startedAt < $1.startedAt }
        try #require(succeeded.count == count, "\(count) runs succeeded: \(runs.map(\.state))")
        return succeeded
    }

    /// Publishes a `run.feedback` event and returns it.
    @discardableResult
    func feedbackEvent(_ h: WorkerHarness, _ payload: JSONObject, id: EventID? = nil) async throws -> Event {
        var event = Event(type: "run.feedback", payload: payload, source: "test.reviewer")
        if let id { event.id = id }
        try await h.bus.publish(event)
        return event
    }

    @Test("feedback from the CLI, the API and a run.feedback event (once per event id) appears in agents stats, the API's stats and /metrics")
    func threeWays() async throws {
        try await withAdminServer { a in
            let h = a.worker
            let id = TestEnvironment.uniqueName("fb-")
            _ = try await h.publishAgent(yaml(id))
            let worker = try WorkerProcess(agents: [id], eventLog: true)
            let runs = try await succeededRuns(h, id, count: 3)
            let (one, two, three) = (runs[0].runID, runs[1].runID, runs[2].runID)

            let cli = try agentry(["runs", "feedback", one.uuidString, "--rating", "4", "--label", "correct", "--comment", "from the CLI"])
            #expect(cli.status == 0 && cli.output.contains("feedback recorded on run"), "\(cli.output)")
            let api = try await a.request(
                .POST, "/api/runs/\(two.uuidString.lowercased())/feedback", body: #"{"rating": 2, "label": "wrong", "comment": "from the API"}"#)
            #expect(api.status == 201, "\(api.text)")
            #expect(api.json?[path: "by"]?.stringValue?.hasPrefix("admin API (") == true, "\(api.text)")
            #expect(api.json?[path: "agent_version"]?.stringValue == "1.0.0")
            let anonymous = try await a.request(
                .POST, "/api/runs/\(two.uuidString.lowercased())/feedback", body: #"{"rating": 2}"#, authorized: false)
            #expect(anonymous.status == 401, "giving feedback needs the token")

            // An event, published twice with the same id: recorded once. A bad one in between is refused and logged, and
            // the drain goes on (the marker after it is recorded).
            let event = try await feedbackEvent(
                h, ["run_id": .string(three.uuidString.lowercased()), "rating": .int(3), "label": "partially", "by": "reviewer-agent"])
            try await feedbackEvent(h, ["run_id": .string("not-a-run"), "rating": .int(3)])
            try await feedbackEvent(h, ["run_id": .string(three.uuidString.lowercased()), "rating": .int(3)], id: event.id)
            try await feedbackEvent(h, ["run_id": .string(one.uuidString.lowercased()), "rating": .int(5), "by": "marker"])
            let feedback = h.store.feedback
            #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { try await feedback.feedback(onRun: one).count == 2 })
            let onThree = try await feedback.feedback(onRun: three)
            #expect(onThree.count == 1, "a redelivered or republished event records nothing twice: \(onThree)")
            #expect(onThree.first?.by == "reviewer-agent" && onThree.first?.eventID == event.id.rawValue && onThree.first?.label == .partially)
            #expect(worker.output.contains("refusing the feedback of a run.feedback event"), "the bad event is logged")
            #expect(worker.output.contains("is not a UUID"), "saying why")
            let fromCLI = try await feedback.feedback(onRun: one).first
            let user = ProcessInfo.processInfo.environment["USER"] ?? "an operator"
            #expect(fromCLI?.by == "\(user) (agentry runs feedback)" && fromCLI?.comment == "from the CLI" && fromCLI?.rating == 4)

            let listed = try await a.request(.GET, "/api/runs/\(two.uuidString.lowercased())/feedback")
            #expect(listed.status == 200 && listed.json?[path: "count"]?.intValue == 1, "\(listed.text)")
            #expect(listed.json?[path: "feedback"]?.arrayValue?.first?[path: "label"]?.stringValue == "wrong")
            let cliList = try agentry(["runs", "feedback", one.uuidString])
            #expect(cliList.output.contains("from the CLI") && cliList.output.contains("marker"), "\(cliList.output)")

            // Ratings 4, 2, 3, 5: mean 3.5; labels correct, wrong, partially: a third wrong.
            let stats = try agentry(["agents", "stats", id, "--json"])
            #expect(stats.status == 0, "\(stats.output)")
            let version = try JSON.parse(stats.output)[path: "versions"]?.arrayValue?.first
            #expect(version?[path: "version"]?.stringValue == "1.0.0" && version?[path: "current"] == .bool(true))
            #expect(version?[path: "runs"]?.intValue == 3 && version?[path: "success_ratio"]?.numberValue == 1, "\(stats.output)")
            #expect(version?[path: "feedback"]?.intValue == 4 && version?[path: "rating_mean"]?.numberValue == 3.5, "\(stats.output)")
            #expect(version?[path: "labelled"]?.intValue == 3 && version?[path: "wrong"]?.intValue == 1, "\(stats.output)")
            #expect(version?[path: "approval_ratio"] == .null && version?[path: "p95_seconds"]?.numberValue != nil, "\(stats.output)")
            let table = try agentry(["agents", "stats", id])
            #expect(
                table.output.contains("1.0.0 (current)") && table.output.contains("3.50") && table.output.contains("33.3% (1/3)"), "\(table.output)")
            let viaAPI = try await a.request(.GET, "/api/agents/\(id)/stats")
            #expect(
                viaAPI.status == 200 && viaAPI.json?[path: "versions"]?.arrayValue?.first?[path: "rating_mean"]?.numberValue == 3.5, "\(viaAPI.text)")
            #expect(try await a.request(.GET, "/api/agents/no-such-\(id)/stats").status == 404)

            // /metrics reads the statistics at most every 15 s.
            let line = "agentry_agent_version_rating_mean{agent=\"\(id)\",version=\"1.0.0\"} 3.5"
            let exported = try await TestEnvironment.eventually(timeout: .seconds(40)) {
                let metrics = try await a.request(.GET, "/metrics").text
                return metrics.contains(line) && metrics.contains("agentry_agent_version_runs{agent=\"\(id)\",version=\"1.0.0\"} 3")
            }
            #expect(exported, "/metrics exports \(line)")
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("feedback is refused, saying why, for a run that does not exist, one that has not finished, and a version that does not collect it")
    func refusals() async throws {
        try await withAdminServer { a in
            let h = a.worker
            let unknown = UUID().uuidString.lowercased()
            let missing = try await a.request(.POST, "/api/runs/\(unknown)/feedback", body: #"{"rating": 3}"#)
            #expect(missing.status == 404 && missing.errorMessage.contains("no run \(unknown)"), "\(missing.text)")
            let missingCLI = try agentry(["runs", "feedback", unknown, "--rating", "3"])
            #expect(missingCLI.status != 0 && missingCLI.output.contains("no run \(unknown)"), "\(missingCLI.output)")
            #expect(try await a.request(.GET, "/api/runs/\(unknown)/feedback").status == 404)
            let empty = try await a.request(.POST, "/api/runs/\(unknown)/feedback", body: "{}")
            #expect(empty.status == 400 && empty.errorMessage.contains("at least one of"), "\(empty.text)")
            let tooHigh = try await a.request(.POST, "/api/runs/\(unknown)/feedback", body: #"{"rating": 7}"#)
            #expect(tooHigh.status == 400 && tooHigh.errorMessage.contains("from 1 to 5"), "\(tooHigh.text)")
            let badLabel = try agentry(["runs", "feedback", unknown, "--label", "meh"])
            #expect(badLabel.status != 0 && badLabel.output.contains("label must be one of correct, wrong, partially"), "\(badLabel.output)")

            // A run still running.
            let slow = TestEnvironment.uniqueName("fb-slow-")
            _ = try await h.publishAgent(yaml(slow, script: "sleep 30"))
            // A version that does not collect feedback.
            let silent = TestEnvironment.uniqueName("fb-off-")
            _ = try await h.publishAgent(yaml(silent, config: "feedback_collection: false"))
            let worker = try WorkerProcess(agents: [slow, silent], extra: ["--shutdown-grace", "0"], eventLog: true)
            try await h.bus.publish(Event(type: "feedback.\(slow)", payload: [:], source: "test"))
            let running = try #require(try await h.waitForRuns(slow) { $0.contains { $0.state == .running } }.first)
            let busy = try await a.request(.POST, "/api/runs/\(running.runID.uuidString.lowercased())/feedback", body: #"{"label": "correct"}"#)
            #expect(busy.status == 409 && busy.errorMessage.contains("is running, not finished"), "\(busy.text)")
            let busyCLI = try agentry(["runs", "feedback", running.runID.uuidString, "--label", "correct"])
            #expect(busyCLI.status != 0 && busyCLI.output.contains("not finished"), "\(busyCLI.output)")

            let done = try await succeededRuns(h, silent, count: 1)[0]
            let off = try await a.request(.POST, "/api/runs/\(done.runID.uuidString.lowercased())/feedback", body: #"{"rating": 5}"#)
            #expect(off.status == 409 && off.errorMessage.contains("does not collect feedback (config.feedback_collection is false)"), "\(off.text)")
            let offCLI = try agentry(["runs", "feedback", done.runID.uuidString, "--rating", "5"])
            #expect(offCLI.status != 0 && offCLI.output.contains("does not collect feedback"), "\(offCLI.output)")
            // Nor through an event: refused and logged, recording nothing.
            try await feedbackEvent(h, ["run_id": .string(done.runID.uuidString.lowercased()), "rating": .int(5)])
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) { worker.output.contains("does not collect feedback") },
                "the refused event is logged")
            #expect(try await h.store.feedback.feedback(onRun: done.runID).isEmpty)
            await worker.stop()
            await h.cleanup(slow)
            await h.cleanup(silent)
        }
    }
}
