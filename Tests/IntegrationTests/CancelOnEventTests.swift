import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import Testing

/// Cancel on event with real `agentry worker` processes: an `alert.resolved` for a device cancels the agent's runs for
/// that device, whatever they are doing (running, queued, awaiting an approval, waiting for a retry), and no other.
@Suite("Cancel on event", .serialized)
struct CancelOnEventTests {
    /// An agent triggered by `alert.<id>.blackscreen`, cancelled by `alert.<id>.resolved` for the same device, one run
    /// at a time; its handler does what the event's `mode` says: `block` (writes its pid, then waits for the release
    /// file), `approval` (asks for one), `fail` (a retry 5 minutes later), anything else answers at once.
    func yaml(id: String, pidFile: String, release: String) -> String {
        let script = [
            #"case "$MODE" in"#,
            "block) echo $$ >> \(pidFile); while [ ! -e \(release) ]; do sleep 0.1; done; echo '{\"released\": true}' ;;",
            #"approval) printf '{"request_approval": {"permission": "devices.reboot", "reason": "reboot %s"}}' "$DEVICE" ;;"#,
            #"fail) echo "fails on purpose" >&2; exit 3 ;;"#,
            #"*) printf '{"device": "%s"}' "$DEVICE" ;;"#,
            "esac",
        ].joined(separator: " ")
        return """
            metadata: {id: \(id), name: Test \(id), version: 1.0.0, author: tests, description: Cancel on event test agent.}
            goal: {type: continuous, description: Recover black screens until they are resolved.}
            triggers:
              - type: alert.\(id).blackscreen
                priority: normal
            cancel_on:
              - type: alert.\(id).resolved
                match: payload.device_id
            permissions: {devices: [reboot]}
            config: {max_parallel_tasks: 1}
            retry: {attempts: 2, backoff: {initial_seconds: 300, max_seconds: 300}}
            handler:
              exec:
                command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                env: {MODE: "{{payload.mode}}", DEVICE: "{{payload.device_id}}"}

            """
    }

    @Test(
        "an alert.resolved for tv-1 cancels tv-1's running, queued, approval-waiting and retry-waiting runs, each recorded with its id; tv-2's run completes"
    )
    func cancelsMatchingRunsOnly() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("cancel-on-")
            let directory = FileManager.default.temporaryDirectory
            let pidFile = directory.appendingPathComponent("\(id).pid").path
            let release = directory.appendingPathComponent("\(id).release").path
            defer {
                try? FileManager.default.removeItem(atPath: pidFile)
                try? FileManager.default.removeItem(atPath: release)
            }
            _ = try await h.publishAgent(yaml(id: id, pidFile: pidFile, release: release))
            let workers = [try WorkerProcess(agents: [id]), try WorkerProcess(agents: [id])]
            func alert(_ device: String, _ mode: String) async throws -> Event {
                let event = Event(
                    type: "alert.\(id).blackscreen", payload: ["device_id": .string(device), "mode": .string(mode)], source: "test")
                try await h.bus.publish(event)
                return event
            }
            func run(of event: Event) async throws -> TaskRun? {
                try await h.runs(id).filter { $0.eventID == event.id.rawValue }.max { $0.startedAt < $1.startedAt }
            }

            // tv-1 awaiting an approval, and tv-1 waiting for its retry (neither holds the one slot).
            let approval = try await alert("tv-1", "approval")
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await run(of: approval)?.state == .awaitingApproval })
            let failing = try await alert("tv-1", "fail")
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await run(of: failing)?.retryAt != nil })
            // tv-1 running (its handler blocks) on one worker; tv-2 held by the other, waiting for the one slot; another
            // tv-1 behind them in RabbitMQ (each worker takes one delivery at a time: its share of max_parallel_tasks 1).
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    (try? await h.connection.queueStatus("agentry.agent.\(id)").consumerCount) == 2
                }, "both workers consume the agent's queue")
            let running = try await alert("tv-1", "block")
            let pid = try #require(try await pids(in: pidFile, count: 1).first)
            let other = try await alert("tv-2", "quick")
            let queued = try await alert("tv-1", "block")
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    (try? await h.connection.queueStatus("agentry.agent.\(id)").messageCount) == 1
                }, "the second tv-1 alert waits in RabbitMQ")
            #expect(try await run(of: queued) == nil)
            #expect(try await run(of: other) == nil)

            let resolved = Event(type: "alert.\(id).resolved", payload: ["device_id": "tv-1"], source: "test")
            try await h.bus.publish(resolved)
            let reason = "cancelled by event \(resolved.id) (alert.\(id).resolved, payload.device_id = tv-1)"

            #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { !isRunning(pid) }, "the running handler (pid \(pid)) is gone")
            let settled = try await TestEnvironment.eventually(timeout: .seconds(40)) {
                var states: [TaskRun.State?] = []
                for event in [running, queued, other, approval, failing] { states.append(try await run(of: event)?.state) }
                return states == [.cancelled, .cancelled, .succeeded, .cancelled, .cancelled]
            }
            let runs = try await h.runs(id)
            #expect(settled, "runs: \(runs.map { "\($0.eventID.prefix(8)) \($0.state.rawValue) \($0.message ?? "")" })")

            for (what, event) in [("running", running), ("queued", queued), ("awaiting approval", approval)] {
                let cancelled = try #require(try await run(of: event), "\(what)")
                #expect(cancelled.state == .cancelled, "\(what)")
                #expect(cancelled.message == reason, "\(what): \(cancelled.message ?? "no message")")
                #expect(cancelled.cancelledBy == resolved.id.rawValue, "\(what)")
            }
            let retry = try #require(try await run(of: failing))
            #expect(retry.cancelledBy == resolved.id.rawValue)
            #expect(retry.message?.hasSuffix("its retry was \(reason)") == true, "\(retry.message ?? "no message")")
            // The queued event never ran: its handler wrote no second pid.
            let written = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
            #expect(written.split(separator: "\n").count == 1, "pids written: \(written)")
            // The approval it waited for is closed, naming the event.
            let approvals = try await h.store.approvals.list(runID: try #require(try await run(of: approval)).runID)
            #expect(approvals.map(\.state) == [.rejected])
            #expect(approvals.first?.decidedBy == "event \(resolved.id)")
            // tv-2 ran to the end.
            let done = try #require(try await run(of: other))
            #expect(done.result?.contains("tv-2") == true)
            #expect(done.cancelledBy == nil)
            // The cancelling event's own record says what it did.
            let record = try #require(try await run(of: resolved))
            #expect(record.state == .skipped)
            #expect(record.message?.hasPrefix("cancel_on: cancelled 2 runs for payload.device_id = tv-1") == true, "\(record.message ?? "")")
            #expect(record.message?.contains("stopping 1 running") == true, "\(record.message ?? "")")

            // A later tv-1 alert runs as usual: the mark covers only events published before it.
            let later = try await alert("tv-1", "quick")
            #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { try await run(of: later)?.state == .succeeded })
            #expect(try await TestEnvironment.waitUntilSettled("agentry.agent.\(id)"), "nothing is left in the agent's queue")
            #expect(try await TestEnvironment.waitUntilSettled("agentry.agent.\(id).cancel"), "nor in its queue of cancelling events")
            for worker in workers { await worker.stop() }
            await h.cleanup(id)
            _ = try? await h.connection.deleteQueue("agentry.agent.\(id).cancel")
        }
    }

    @Test(
        "an event that both triggers the agent and cancels its runs stops the earlier run for its key, then runs; one without the key cancels nothing"
    )
    func triggerThatCancels() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("supersede-")
            let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).pid").path
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            let script = #"case "$MODE" in block) echo $$ >> \#(pidFile); exec sleep 300 ;; *) printf '{"key": "%s"}' "$KEY" ;; esac"#
            _ = try await h.publishAgent(
                """
                metadata: {id: \(id), name: Test \(id), version: 1.0.0, author: tests, description: Supersede test agent.}
                goal: {type: continuous, description: Only the latest job per key matters.}
                triggers:
                  - type: job.\(id)
                    priority: normal
                cancel_on:
                  - type: job.\(id)
                    match: payload.key
                  - type: stop.\(id)
                    match: [payload.key]
                config: {max_parallel_tasks: 1}
                handler:
                  exec:
                    command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                    env: {MODE: "{{payload.mode}}", KEY: "{{payload.key}}"}

                """)
            let worker = try WorkerProcess(agents: [id])
            let first = Event(type: "job.\(id)", payload: ["key": "k1", "mode": "block"], source: "test")
            try await h.bus.publish(first)
            let pid = try #require(try await pids(in: pidFile, count: 1).first)
            let second = Event(type: "job.\(id)", payload: ["key": "k1", "mode": "quick"], source: "test")
            try await h.bus.publish(second)
            func run(of event: Event) async throws -> TaskRun? { try await h.runs(id).first { $0.eventID == event.id.rawValue } }
            #expect(try await TestEnvironment.eventually(timeout: .seconds(30)) { try await run(of: second)?.state == .succeeded })
            #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { !isRunning(pid) }, "the first run's handler (pid \(pid)) is gone")
            let cancelled = try #require(try await run(of: first))
            #expect(cancelled.state == .cancelled)
            #expect(cancelled.message == "cancelled by event \(second.id) (job.\(id), payload.key = k1)")
            #expect(cancelled.cancelledBy == second.id.rawValue)
            let ran = try await h.runs(id).filter { $0.eventID == second.id.rawValue }
            #expect(ran.map(\.state) == [.succeeded], "the second event ran once and was not cancelled by itself")

            let stop = Event(type: "stop.\(id)", payload: ["other": "x"], source: "test")
            try await h.bus.publish(stop)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { try await run(of: stop)?.state == .skipped })
            #expect(
                try await run(of: stop)?.message
                    == "cancel_on: the event has no payload.key, so it cancels nothing by cancel_on 'stop.\(id)'")
            await worker.stop()
            await h.cleanup(id)
            _ = try? await h.connection.deleteQueue("agentry.agent.\(id).cancel")
        }
    }
}
