import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import NIOHTTP1
import Testing

/// A handler that holds a device, writes 20,000 characters to stderr, fails its first attempt and succeeds on its
/// second with a follow-up event `done.<id>`.
private func flakyHolderYAML(_ id: String) -> String {
    let script =
        #"cat >/dev/null; head -c 20000 /dev/zero | tr '\0' x >&2; if [ "$AGENTRY_ATTEMPT" = 1 ]; then exit 3; fi; printf '{"ok": true, "events": [{"type": "done.ID", "payload": {"n": 1}}]}'"#
        .replacingOccurrences(of: "ID", with: id)
    return agentYAML(
        id: id, trigger: "flaky.\(id)",
        handler: """
            exec:
              command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
            """,
        extra: """
            retry:
              attempts: 2
              backoff: {initial_seconds: 0.3, multiplier: 1, max_seconds: 1}
            permissions:
              devices: [read, take_control]
            resources: ["device:{{payload.device}}"]

            """)
}

@Suite("A run's detail, its whole output and its retry", .serialized)
struct RunDetailTests {
    @Test(
        "a retried run's detail lists both attempts, its event, timings, the locks it held and its follow-ups; stderr is cut with the whole one link away"
    )
    func retriedRunDetail() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("detail-")
            _ = try await a.worker.publishAgent(flakyHolderYAML(id))
            let worker = try WorkerProcess(agents: [id], eventLog: true)
            let event = Event(type: "flaky.\(id)", payload: ["device": .string("tv-\(id)")], priority: .high, source: "test")
            try await a.worker.bus.publish(event)
            let runs = try await a.worker.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.state == .succeeded } }
            let ordered = runs.filter { $0.eventID == event.id.rawValue }.sorted { $0.attempt < $1.attempt }
            #expect(ordered.map(\.state) == [.failed, .succeeded], "\(ordered.map { "\($0.attempt) \($0.state) \($0.message ?? "")" })")
            let first = try #require(ordered.first).runID.uuidString.lowercased()
            let second = try #require(ordered.last).runID.uuidString.lowercased()

            // Every follow-up is logged by the time the detail is read (the log's consumer runs in the worker).
            _ = try await TestEnvironment.eventually(timeout: .seconds(10)) {
                let detail = try await a.request(.GET, "/api/runs/\(second)").json
                return detail?[path: "follow_ups"]?.arrayValue?.contains { $0[path: "type"]?.stringValue == "done.\(id)" } == true
                    && detail?[path: "event"]?[path: "type"]?.stringValue == event.type
            }
            let detail = try #require(try await a.request(.GET, "/api/runs/\(second)").json)
            // Both attempts, with their outcomes.
            let attempts = detail[path: "attempts"]?.arrayValue ?? []
            #expect(attempts.map { $0[path: "attempt"]?.intValue ?? 0 } == [1, 2])
            #expect(attempts.map { $0[path: "state"]?.stringValue ?? "" } == ["failed", "succeeded"])
            #expect(attempts.map { $0[path: "run_id"]?.stringValue ?? "" } == [first, second])
            #expect(attempts.allSatisfy { $0[path: "worker_id"]?.stringValue?.isEmpty == false && $0[path: "stderr"] == .null })
            // Its event as published.
            #expect(detail[path: "event"]?[path: "id"]?.stringValue == event.id.rawValue)
            #expect(detail[path: "event"]?[path: "priority"] == "HIGH")
            #expect(detail[path: "event"]?[path: "source"] == "test")
            #expect(detail[path: "event"]?[path: "payload"]?[path: "device"]?.stringValue == "tv-\(id)")
            // Timings as `agentry runs show` prints them.
            let timings = try #require(detail[path: "timings"])
            for moment in ["published_at", "received_at", "started_at", "finished_at"] {
                #expect(timings[path: moment]?.stringValue.flatMap(Timestamp.parse) != nil, "\(moment): \(timings)")
            }
            #expect((timings[path: "run_ms"]?.numberValue ?? -1) >= 0)
            #expect((timings[path: "broker_ms"]?.numberValue ?? -1) >= 0)
            // stderr cut, flagged, and whole at /output.
            #expect(detail[path: "stderr_cut"] == .bool(true))
            #expect(detail[path: "stderr_size"]?.intValue == 20_000)
            #expect(detail[path: "stderr"]?.stringValue?.count == Representation.detailTextLimit)
            let whole = try await a.request(.GET, "/api/runs/\(second)/output?stream=stderr")
            #expect(whole.status == 200)
            #expect(whole.headers.first(name: "Content-Type")?.hasPrefix("text/plain") == true)
            #expect(whole.text.count == 20_000 && whole.text.allSatisfy { $0 == "x" })
            #expect(try await a.request(.GET, "/api/runs/\(second)/output?stream=stdout").status == 404, "its JSON stdout is its result")
            #expect(try await a.request(.GET, "/api/runs/\(second)/output?stream=nope").status == 400)
            // The lock it held, released.
            let locks = detail[path: "locks"]?.arrayValue ?? []
            #expect(locks.count == 1, "\(locks)")
            #expect(locks.first?[path: "resource"]?.stringValue == "device:tv-\(id)")
            #expect(locks.first?[path: "ended"] == "released")
            #expect((locks.first?[path: "fencing_token"]?.intValue ?? 0) > 0)
            #expect(locks.first?[path: "released_at"]?.stringValue.flatMap(Timestamp.parse) != nil)
            // Its follow-ups: its own lifecycle events and its result's event; none of the other attempt's.
            let followUps = detail[path: "follow_ups"]?.arrayValue ?? []
            let types = Set(followUps.compactMap { $0[path: "type"]?.stringValue })
            #expect(types.isSuperset(of: ["agent.task.started", "agent.task.completed", "done.\(id)", "resource.acquired"]), "\(types)")
            #expect(followUps.allSatisfy { $0[path: "causation_id"]?.stringValue == event.id.rawValue })
            #expect(
                followUps.filter { $0[path: "payload"]?[path: "run_id"] != nil }.allSatisfy {
                    $0[path: "payload"]?[path: "run_id"]?.stringValue == second
                })
            let firstDetail = try #require(try await a.request(.GET, "/api/runs/\(first)").json)
            let firstTypes = (firstDetail[path: "follow_ups"]?.arrayValue ?? []).compactMap { $0[path: "type"]?.stringValue }
            #expect(firstTypes.contains("agent.task.started") && !firstTypes.contains("done.\(id)"), "\(firstTypes)")
            #expect(firstDetail[path: "locks"]?.arrayValue?.count == 1, "the failed attempt held the device too")
            #expect(detail[path: "actions"]?[path: "retry_as"] == "copy", "the agent completed the event: a retry runs a copy")

            // A retry needs the token; it runs a copy of the completed event, caused by the original.
            #expect(try await a.request(.POST, "/api/runs/\(second)/retry", authorized: false).status == 401)
            let retried = try await a.request(.POST, "/api/runs/\(second)/retry")
            #expect(retried.status == 202, "\(retried.text)")
            #expect(retried.json?[path: "copy"] == .bool(true))
            let copy = try #require(retried.json?[path: "event_id"]?.stringValue)
            #expect(copy != event.id.rawValue)
            let copied = try await a.worker.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.eventID == copy && $0.state == .succeeded } }
            #expect(copied.filter { $0.eventID == copy }.map(\.attempt).sorted() == [1, 2], "the copy runs with its own attempts")
            let copyRun = try #require(copied.first { $0.eventID == copy }).runID.uuidString.lowercased()
            let copyDetail = try await a.request(.GET, "/api/runs/\(copyRun)").json
            #expect(copyDetail?[path: "event"]?[path: "causation_id"]?.stringValue == event.id.rawValue)
            #expect(copyDetail?[path: "event"]?[path: "payload"]?[path: "device"]?.stringValue == "tv-\(id)")
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }

    @Test("a failed run's retry is its event's next attempt; retrying a run that has not finished is refused with 409")
    func retryAttemptAndConflict() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("again-")
            _ = try await a.worker.publishAgent(
                agentYAML(
                    id: id, trigger: "again.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'in=$(cat); case "$in" in *slow*) sleep 20 ;; esac; echo "try $AGENTRY_ATTEMPT" >&2; exit 4']
                        """, config: "auto_retry: false"))
            let worker = try WorkerProcess(agents: [id], eventLog: true)
            let slow = Event(type: "again.\(id)", payload: ["mode": "slow"], source: "test")
            try await a.worker.bus.publish(slow)
            let running = try await a.worker.waitForRuns(id) { $0.contains { $0.eventID == slow.id.rawValue && $0.state == .running } }
            let runningID = try #require(running.first { $0.eventID == slow.id.rawValue }).runID.uuidString.lowercased()
            let refused = try await a.request(.POST, "/api/runs/\(runningID)/retry")
            #expect(refused.status == 409 && refused.errorCode == "conflict", "\(refused.text)")
            #expect(refused.errorMessage.contains("has not finished"), "\(refused.errorMessage)")
            let actions = try await a.request(.GET, "/api/runs/\(runningID)").json?[path: "actions"]
            #expect(actions?[path: "cancel"] == .bool(true) && actions?[path: "retry"] == .bool(false))
            #expect(try await a.request(.POST, "/api/runs/\(runningID)/cancel").status == 200)

            let fast = Event(type: "again.\(id)", payload: ["mode": "fast"], source: "test")
            try await a.worker.bus.publish(fast)
            let failed = try await a.worker.waitForRuns(id) { $0.contains { $0.eventID == fast.id.rawValue && $0.state == .failed } }
            let failedID = try #require(failed.first { $0.eventID == fast.id.rawValue }).runID.uuidString.lowercased()
            #expect(try await a.request(.GET, "/api/runs/\(failedID)").json?[path: "actions"]?[path: "retry_as"] == "attempt")
            let retried = try await a.request(.POST, "/api/runs/\(failedID)/retry")
            #expect(retried.status == 202, "\(retried.text)")
            #expect(retried.json?[path: "copy"] == .bool(false) && retried.json?[path: "attempt"]?.intValue == 2)
            #expect(retried.json?[path: "event_id"]?.stringValue == fast.id.rawValue)
            let again = try await a.worker.waitForRuns(id) { $0.filter { $0.eventID == fast.id.rawValue && $0.state == .failed }.count == 2 }
            let attempts = again.filter { $0.eventID == fast.id.rawValue }.sorted { $0.attempt < $1.attempt }
            #expect(attempts.map(\.attempt) == [1, 2])
            #expect(attempts.last?.stderr == "try 2")
            let detail = try await a.request(.GET, "/api/runs/\(failedID)").json
            #expect(detail?[path: "attempts"]?.arrayValue?.map { $0[path: "state"]?.stringValue ?? "" } == ["failed", "failed"])
            #expect(try await a.request(.POST, "/api/runs/\(UUID().uuidString.lowercased())/retry").status == 404)
            await worker.stop()
            await a.worker.cleanup(id)
        }
    }
}
