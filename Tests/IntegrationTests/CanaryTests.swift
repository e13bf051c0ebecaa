import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

/// Canaries with a real worker: `agentry agents publish --canary` splits an agent's events between two versions by
/// each event id's bucket, `agents stats` shows both, `rollback` ends the canary and `promote` makes it current.
@Suite("Canary", .serialized)
struct CanaryTests {
    func agentry(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, arguments)
    }

    func yaml(_ id: String, version: String) -> String {
        """
        metadata: {id: \(id), name: Test \(id), version: \(version), author: tests, description: Canary test agent.}
        goal: {type: continuous, description: Exercise canaries.}
        triggers:
          - type: canary.\(id)
            priority: normal
        handler:
          exec:
            command: [/bin/sh, -c, "printf '{\\"ran\\": \\"\(version)\\"}'"]

        """
    }

    /// Publishes `count` events and returns, once each has succeeded, the version each ran at by event id.
    func versions(_ h: WorkerHarness, _ id: String, count: Int) async throws -> [String: String] {
        let events = (0..<count).map { _ in Event(type: "canary.\(id)", payload: [:], source: "test") }
        for event in events { try await h.bus.publish(event) }
        let ids = Set(events.map(\.id.rawValue))
        let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { runs in
            Set(runs.filter { $0.state == .succeeded && ids.contains($0.eventID) }.map(\.eventID)).count == count
        }
        var result: [String: String] = [:]
        for run in runs where run.state == .succeeded && ids.contains(run.eventID) {
            result[run.eventID] = run.agentVersion
            let ran = try JSON.parse(Array((run.result ?? "{}").utf8))[path: "ran"]?.stringValue
            #expect(ran == run.agentVersion, "the version's own handler ran")
        }
        try #require(result.count == count, "every event ran once: \(result.count) of \(count)")
        return result
    }

    /// Waits until the worker's log holds `text` `count` times.
    func logged(_ worker: WorkerProcess, _ text: String, times count: Int = 1) async throws -> Bool {
        try await TestEnvironment.eventually(timeout: .seconds(20)) { worker.output.components(separatedBy: text).count - 1 >= count }
    }

    @Test("a 50% canary splits a batch between two versions by each event id's bucket; stats show both; rollback and promote end it")
    func splitRollbackPromote() async throws {
        try await withAdminServer { a in
            let h = a.worker
            let id = TestEnvironment.uniqueName("canary-")
            _ = try await h.publishAgent(yaml(id, version: "1.0.0"))
            _ = try await h.registry.register(try AgentDefinition.parse(yaml: yaml(id, version: "1.1.0")))
            let worker = try WorkerProcess(agents: [id])

            let published = try agentry(["agents", "publish", id, "--version", "1.1.0", "--canary", "50%"])
            #expect(
                published.status == 0 && published.output.contains("as a canary: it runs 50% of the events, 1.0.0 the rest"), "\(published.output)")
            #expect(try await logged(worker, "canary takes its share of the events"), "\(worker.output)")
            let list = try agentry(["agents", "list"])
            #expect(list.output.contains("1.1.0 50%"), "agents list shows the canary: \(list.output)")
            let show = try agentry(["agents", "show", id])
            #expect(show.output.contains("canary: 1.1.0 runs 50% of the events"), "\(show.output)")
            let listed = try await a.request(.GET, "/api/agents")
            let entry = listed.json?[path: "agents"]?.arrayValue?.first { $0[path: "agent_id"]?.stringValue == id }
            #expect(entry?[path: "canary.version"]?.stringValue == "1.1.0" && entry?[path: "canary.percent"]?.intValue == 50, "\(listed.text)")

            let split = try await versions(h, id, count: 40)
            for (event, version) in split {
                let expected = CanarySplit.takes(percent: 50, agentID: id, eventID: event) ? "1.1.0" : "1.0.0"
                #expect(version == expected, "event \(event) ran at \(version), its bucket says \(expected)")
            }
            let counts = Dictionary(grouping: split.values, by: { $0 }).mapValues(\.count)
            #expect((counts["1.0.0"] ?? 0) > 0 && (counts["1.1.0"] ?? 0) > 0, "both versions ran: \(counts)")

            let stats = try JSON.parse(try agentry(["agents", "stats", id, "--json"]).output)
            let columns = stats[path: "versions"]?.arrayValue ?? []
            #expect(columns.map { $0[path: "version"]?.stringValue } == ["1.0.0", "1.1.0"], "\(stats)")
            #expect(columns.first?[path: "runs"]?.intValue == Int64(counts["1.0.0"] ?? -1) && columns.first?[path: "current"] == .bool(true))
            #expect(columns.last?[path: "runs"]?.intValue == Int64(counts["1.1.0"] ?? -1) && columns.last?[path: "canary"] == .bool(true))
            #expect(stats[path: "canary.percent"]?.intValue == 50)
            let table = try agentry(["agents", "stats", id])
            #expect(table.output.contains("1.0.0 (current)") && table.output.contains("1.1.0 (canary 50%)"), "\(table.output)")

            // Rolled back through the API: every event goes to 1.0.0 again.
            let rolledBack = try await a.request(.POST, "/api/agents/\(id)/rollback")
            #expect(rolledBack.status == 200 && rolledBack.json?[path: "current_version"]?.stringValue == "1.0.0", "\(rolledBack.text)")
            #expect(try await logged(worker, "canary ended"), "\(worker.output)")
            #expect(Set(try await versions(h, id, count: 10).values) == ["1.0.0"])
            let again = try await a.request(.POST, "/api/agents/\(id)/rollback")
            #expect(again.status == 409 && again.errorMessage.contains("has no canary"), "\(again.text)")
            let noPromote = try agentry(["agents", "promote", id])
            #expect(noPromote.status != 0 && noPromote.output.contains("has no canary to promote"), "\(noPromote.output)")

            // A canary through the API, promoted from the CLI: 1.1.0 becomes the current version, for every event.
            let canary = try await a.request(.POST, "/api/agents/\(id)/publish", body: #"{"version": "1.1.0", "canary_percent": 50}"#)
            #expect(canary.status == 200 && canary.json?[path: "canary_percent"]?.intValue == 50, "\(canary.text)")
            let current = try await a.request(.POST, "/api/agents/\(id)/publish", body: #"{"version": "1.0.0", "canary_percent": 50}"#)
            #expect(current.status == 409 && current.errorMessage.contains("is the current version already"), "\(current.text)")
            #expect(try await logged(worker, "canary takes its share of the events", times: 2), "\(worker.output)")
            let promoted = try agentry(["agents", "promote", id])
            #expect(promoted.status == 0 && promoted.output.contains("promoted \(id) 1.1.0"), "\(promoted.output)")
            #expect(try await logged(worker, "canary ended", times: 2), "\(worker.output)")
            let state = try await h.registry.list().first { $0.agentID == id }
            #expect(state?.activeVersion == "1.1.0" && state?.canary == nil)
            #expect(Set(try await versions(h, id, count: 10).values) == ["1.1.0"])
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("a canary needs a registered version other than the current one, and a share from 1 to 100")
    func refusals() async throws {
        try await withAdminServer { a in
            let h = a.worker
            let id = TestEnvironment.uniqueName("canary-bad-")
            _ = try await h.publishAgent(yaml(id, version: "1.0.0"))
            let unknown = try agentry(["agents", "publish", id, "--version", "9.9.9", "--canary", "10%"])
            #expect(unknown.status != 0 && unknown.output.contains("has no version 9.9.9"), "\(unknown.output)")
            let share = try agentry(["agents", "publish", id, "--version", "1.0.0", "--canary", "150%"])
            #expect(share.status != 0 && share.output.contains("whole percent from 1 to 100"), "\(share.output)")
            let noVersion = try agentry(["agents", "publish", id, "--canary", "10%"])
            #expect(noVersion.status != 0 && noVersion.output.contains("--canary needs --version"), "\(noVersion.output)")
            let api = try await a.request(.POST, "/api/agents/\(id)/publish", body: #"{"canary_percent": 10}"#)
            #expect(api.status == 400 && api.errorMessage.contains("needs 'version'"), "\(api.text)")
            await h.cleanup(id)
        }
    }
}
