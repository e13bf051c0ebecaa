import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import Testing

/// Run trees with real `agentry worker` processes: the subagent version a range picks, a parent that waits for its
/// children without a slot, the depth limit against cycles, deadlines and failure policies, on-demand agents.
@Suite("Delegation", .serialized)
struct DelegationTests {
    /// A definition with subagents, a goal type and an exec handler of the test's choosing.
    func yaml(
        id: String, version: String = "1.0.0", goal: String = "continuous", trigger: String, subagents: String = "", script: String,
        config: String = ""
    ) -> String {
        var text = """
            metadata: {id: \(id), name: Test \(id), version: \(version), author: tests, description: Delegation test agent.}
            goal: {type: \(goal), description: Exercise run trees.}
            triggers:
              - type: \(trigger)
                priority: normal
            handler:
              exec:
                command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']

            """
        if !subagents.isEmpty { text += "subagents:\n" + subagents.split(separator: "\n").map { "  \($0)\n" }.joined() }
        if !config.isEmpty { text += "config:\n" + config.split(separator: "\n").map { "  \($0)\n" }.joined() }
        return text
    }

    /// A shell handler that answers `first` on its first call and `resumed` (with `$in`, the input, in it) when called
    /// again with its children.
    func twoStep(first: String, resumed: String) -> String {
        #"in=$(cat); case "$in" in *'"children"'*) printf '%s' "\#(resumed)" ;; *) printf '%s' '\#(first)' ;; esac"#
    }

    func children(_ h: WorkerHarness, of runID: UUID) async throws -> [ChildRecord] {
        try await h.store.delegations.children(of: runID)
    }

    @Test("a task goes to the highest published version inside the range among three; a retired subagent or an unknown task fails the run clearly")
    func versionChoice() async throws {
        try await withWorkerHarness { h in
            let sub = TestEnvironment.uniqueName("sub-")
            for version in ["1.0.0", "1.5.0", "2.0.0"] {
                _ = try await h.publishAgent(
                    yaml(
                        id: sub, version: version, trigger: "never.\(sub)", script: #"printf '{"ran": "\#(version)", "task": "%s"}' "$AGENTRY_TASK""#)
                )
            }
            let parent = TestEnvironment.uniqueName("parent-")
            _ = try await h.publishAgent(
                yaml(
                    id: parent, trigger: "start.\(parent)",
                    subagents: "- {id: \(sub), version: '^1.0.0', delegate_for: [check]}",
                    script:
                        #"in=$(cat); case "$in" in *unknown*) printf '{"delegate": [{"task": "reboot"}]}' ;; *) printf '{"delegate": [{"task": "check", "payload": {"n": 1}}]}' ;; esac"#
                ))
            let worker = try WorkerProcess(agents: [parent, sub])
            let start = Event(type: "start.\(parent)", payload: [:], source: "test")
            try await h.bus.publish(start)
            let childRuns = try await h.waitForRuns(sub) { $0.contains { $0.state == .succeeded } }
            let child = try #require(childRuns.first { $0.state == .succeeded })
            let parentRun = try #require(try await h.runs(parent).first { $0.eventID == start.id.rawValue })
            #expect(parentRun.state == .succeeded)
            #expect(child.agentVersion == "1.5.0", "^1.0.0 among 1.0.0, 1.5.0 and 2.0.0 (current) is 1.5.0")
            let result = try JSON.parse(Array((child.result ?? "{}").utf8))
            #expect(result[path: "ran"]?.stringValue == "1.5.0", "version 1.5.0's own handler ran: \(child.result ?? "-")")
            #expect(result[path: "task"]?.stringValue == "check")
            #expect(child.eventType == "task.check")
            #expect(child.parentRunID == parentRun.runID)
            #expect(child.rootRunID == parentRun.runID)
            #expect(child.depth == 1)
            let recorded = try await children(h, of: parentRun.runID)
            #expect(recorded.map(\.state) == [.succeeded])
            #expect(recorded.first?.childRunID == child.runID)
            #expect(recorded.first?.awaited == false)

            // A task no subagent handles.
            let unknown = Event(type: "start.\(parent)", payload: ["unknown": .bool(true)], source: "test")
            try await h.bus.publish(unknown)
            let refused = try await h.waitForRuns(parent) { $0.contains { $0.eventID == unknown.id.rawValue && $0.state == .failed } }
                .first { $0.eventID == unknown.id.rawValue }
            #expect(refused?.message?.contains("no subagent of \(parent) handles task 'reboot'") == true, "\(refused?.message ?? "-")")
            #expect(refused?.message?.contains("check") == true, "names the tasks its subagents handle")

            // The subagent retired: no version fits the range any more.
            _ = try await h.registry.retire(agentID: sub)
            let orphan = Event(type: "start.\(parent)", payload: [:], source: "test")
            try await h.bus.publish(orphan)
            let failed = try await h.waitForRuns(parent) { $0.contains { $0.eventID == orphan.id.rawValue && $0.state == .failed } }
                .first { $0.eventID == orphan.id.rawValue }
            let message = failed?.message ?? "-"
            #expect(message.contains("task 'check'") && message.contains("^1.0.0") && message.contains(sub), "\(message)")
            await worker.stop()
            await h.cleanup(parent)
            await h.cleanup(sub)
        }
    }

    @Test("a parent awaits two children on different workers without holding a slot, and resumes with both results")
    func awaitChildren() async throws {
        try await withWorkerHarness { h in
            let left = TestEnvironment.uniqueName("left-")
            let right = TestEnvironment.uniqueName("right-")
            // The children take a while, so that both parents wait at the same time.
            for id in [left, right] {
                _ = try await h.publishAgent(
                    yaml(
                        id: id, trigger: "never.\(id)",
                        script: #"sleep 2; printf '{"side": "%s", "worker": "%s"}' "$AGENTRY_AGENT_ID" "$AGENTRY_WORKER_ID""#))
            }
            let parent = TestEnvironment.uniqueName("waiter-")
            let first = #"{"delegate": [{"task": "left", "payload": {"k": 1}}, {"task": "right"}], "await": {"deadline_seconds": 120}}"#
            _ = try await h.publishAgent(
                yaml(
                    id: parent, trigger: "start.\(parent)",
                    subagents:
                        "- {id: \(left), version: '>=1.0.0', delegate_for: [left]}\n- {id: \(right), version: '>=1.0.0', delegate_for: [right]}",
                    script: twoStep(first: first, resumed: #"{\"resumed\": $in}"#), config: "max_parallel_tasks: 1"))
            let one = try WorkerProcess(agents: [parent, left])
            let two = try WorkerProcess(agents: [right])
            let events = (0..<2).map { _ in Event(type: "start.\(parent)", payload: [:], source: "test") }
            for event in events { try await h.bus.publish(event) }
            // max_parallel_tasks is 1: two runs can wait at once only because a waiting run holds no slot.
            _ = try await h.waitForRuns(parent, timeout: .seconds(30)) { runs in runs.filter { $0.state == .waiting }.count == 2 }
            let done = try await h.waitForRuns(parent, timeout: .seconds(60)) { runs in runs.filter { $0.state == .succeeded }.count == 2 }
            for run in done {
                #expect(run.steps == 2, "called twice: delegating, then with the children")
                let result = try #require(run.result)
                let value = try JSON.parse(Array(result.utf8))
                let children = value[path: "resumed.children"]?.arrayValue ?? []
                #expect(children.count == 2, "\(result)")
                #expect(children.compactMap { $0[path: "state"]?.stringValue } == ["succeeded", "succeeded"])
                #expect(children.compactMap { $0[path: "result.side"]?.stringValue } == [left, right])
                let workers = Set(children.compactMap { $0[path: "result.worker"]?.stringValue })
                #expect(workers.count == 2, "the two children ran on different workers: \(workers)")
                #expect(value[path: "resumed.step"]?.intValue == 2)
            }
            await one.stop()
            await two.stop()
            for id in [parent, left, right] { await h.cleanup(id) }
        }
    }

    @Test("a cycle of agents delegating to each other stops at the depth limit (--max-delegation-depth), with a message that says so")
    func cycleStopsAtDepthLimit() async throws {
        try await withWorkerHarness { h in
            let ping = TestEnvironment.uniqueName("ping-")
            let pong = TestEnvironment.uniqueName("pong-")
            // ping 1.0.0 has no subagent (so that pong can be published), then pong names ping, then ping 1.1.0 names pong.
            _ = try await h.publishAgent(yaml(id: ping, trigger: "start.\(ping)", script: "true"))
            _ = try await h.publishAgent(
                yaml(
                    id: pong, trigger: "never.\(pong)", subagents: "- {id: \(ping), version: '>=1.1.0 || 1.0.0', delegate_for: [ping]}",
                    script: #"printf '{"delegate": [{"task": "ping"}]}'"#))
            _ = try await h.publishAgent(
                yaml(
                    id: ping, version: "1.1.0", trigger: "start.\(ping)", subagents: "- {id: \(pong), version: '^1.0.0', delegate_for: [pong]}",
                    script: #"printf '{"delegate": [{"task": "pong"}]}'"#))
            let limit = 3
            let worker = try WorkerProcess(agents: [ping, pong], extra: ["--max-delegation-depth", "\(limit)"])
            let start = Event(type: "start.\(ping)", payload: [:], source: "test")
            try await h.bus.publish(start)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(30)) {
                    try await (h.runs(ping) + h.runs(pong)).contains { $0.state == .failed }
                })
            let runs = try await (h.runs(ping) + h.runs(pong)).sorted { $0.depth < $1.depth }
            let failed = try #require(runs.first { $0.state == .failed })
            #expect(failed.depth == limit)
            #expect(failed.message?.contains("delegation depth limit reached") == true, "\(failed.message ?? "-")")
            #expect(runs.map(\.depth) == Array(0...limit), "one run per level, then it stops: \(runs.map(\.depth))")
            #expect(Set(runs.compactMap(\.rootRunID)).count == 1, "one tree")
            await worker.stop()
            await h.cleanup(ping)
            await h.cleanup(pong)
        }
    }

    @Test("an await deadline resumes the parent with the late child timed out (continue); a failed child fails the parent at once (fail)")
    func deadlineAndFailurePolicy() async throws {
        try await withWorkerHarness { h in
            let slow = TestEnvironment.uniqueName("slow-")
            _ = try await h.publishAgent(
                yaml(id: slow, trigger: "never.\(slow)", script: #"in=$(cat); case "$in" in *fail*) echo broken >&2; exit 3 ;; *) sleep 6 ;; esac"#))
            let parent = TestEnvironment.uniqueName("patient-")
            let script =
                #"in=$(cat); case "$in" in *'"children"'*) printf '{"after": %s}' "$in" ;; *strict*) printf '{"delegate": [{"task": "work", "payload": {"fail": true}}], "await": {"on_failure": "fail"}}' ;; *) printf '{"delegate": [{"task": "work"}], "await": {"deadline_seconds": 2, "on_failure": "continue"}}' ;; esac"#
            _ = try await h.publishAgent(
                yaml(id: parent, trigger: "start.\(parent)", subagents: "- {id: \(slow), version: '1.0.0', delegate_for: [work]}", script: script))
            let worker = try WorkerProcess(agents: [parent, slow])
            let patient = Event(type: "start.\(parent)", payload: [:], source: "test")
            try await h.bus.publish(patient)
            let resumed = try await h.waitForRuns(parent, timeout: .seconds(30)) {
                $0.contains { $0.eventID == patient.id.rawValue && $0.state == .succeeded }
            }
            .first { $0.eventID == patient.id.rawValue }
            let value = try JSON.parse(Array((resumed?.result ?? "{}").utf8))
            #expect(value[path: "after.children"]?.arrayValue?.first?[path: "state"]?.stringValue == "timed_out", "\(resumed?.result ?? "-")")

            let strict = Event(type: "start.\(parent)", payload: ["strict": .bool(true)], source: "test")
            try await h.bus.publish(strict)
            let failed = try await h.waitForRuns(parent, timeout: .seconds(30)) {
                $0.contains { $0.eventID == strict.id.rawValue && $0.state == .failed }
            }
            .first { $0.eventID == strict.id.rawValue }
            let message = failed?.message ?? "-"
            #expect(message.contains("task work") && message.contains("failed") && message.contains("on_failure: fail"), "\(message)")
            #expect(failed?.result.map { $0.contains("after") } != true, "the parent's handler was not called with its children")
            await worker.stop()
            await h.cleanup(parent)
            await h.cleanup(slow)
        }
    }

    @Test("the delegate handler of a definition delegates its templated tasks, waits, and succeeds with its children")
    func delegateHandler() async throws {
        try await withWorkerHarness { h in
            let sub = TestEnvironment.uniqueName("doer-")
            _ = try await h.publishAgent(
                yaml(id: sub, goal: "on-demand", trigger: "never.\(sub)", script: #"in=$(cat); printf '{"got": %s}' "$in""#))
            let parent = TestEnvironment.uniqueName("builtin-")
            _ = try await h.publishAgent(
                """
                metadata: {id: \(parent), name: Test, version: 1.0.0, author: tests, description: Delegate handler.}
                goal: {type: continuous, description: Exercise the delegate handler.}
                triggers: [{type: start.\(parent), priority: normal}]
                subagents: [{id: \(sub), version: '^1.0.0', delegate_for: [work]}]
                handler:
                  delegate:
                    tasks: [{task: work, payload: {n: "{{payload.n}}"}}]
                    await: true
                """)
            let worker = try WorkerProcess(agents: [parent, sub])
            let start = Event(type: "start.\(parent)", payload: ["n": "seven"], source: "test")
            try await h.bus.publish(start)
            let done = try await h.waitForRuns(parent) { $0.contains { $0.state == .succeeded } }.first { $0.state == .succeeded }
            let result = try JSON.parse(Array((done?.result ?? "{}").utf8))
            let child = result[path: "children"]?.arrayValue?.first
            #expect(child?[path: "state"]?.stringValue == "succeeded", "\(done?.result ?? "-")")
            #expect(child?[path: "result.got.payload.n"]?.stringValue == "seven", "the task's payload was filled from the event")
            #expect(child?[path: "result.got.type"]?.stringValue == "task.work")
            #expect(done?.steps == 2)
            await worker.stop()
            await h.cleanup(parent)
            await h.cleanup(sub)
        }
    }

    @Test("an on-demand agent ignores its trigger's events and runs when invoked")
    func onDemand() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("ondemand-")
            _ = try await h.publishAgent(
                yaml(id: id, goal: "on-demand", trigger: "poke.\(id)", script: #"in=$(cat); printf '{"type": "%s"}' "$AGENTRY_EVENT_TYPE""#))
            let worker = try WorkerProcess(agents: [id])
            let poke = Event(type: "poke.\(id)", payload: [:], source: "test")
            try await h.bus.publish(poke)
            let skipped = try await h.waitForRuns(id) { $0.contains { $0.eventID == poke.id.rawValue } }.first { $0.eventID == poke.id.rawValue }
            #expect(skipped?.state == .skipped)
            #expect(skipped?.message?.contains("on-demand") == true, "\(skipped?.message ?? "-")")
            let invoked = try await h.registry.invoke(agentID: id, task: "check_screen", payload: ["device": "tv-1"], by: "test")
            let ran = try await h.waitForRuns(id) { $0.contains { $0.eventID == invoked.id.rawValue && $0.state == .succeeded } }
                .first { $0.eventID == invoked.id.rawValue }
            #expect(try JSON.parse(Array((ran?.result ?? "{}").utf8))[path: "type"]?.stringValue == "task.check_screen")
            await #expect(throws: RegistryError.self) {
                _ = try await h.registry.invoke(agentID: TestEnvironment.uniqueName("nobody-"), payload: [:], by: "test")
            }
            await worker.stop()
            await h.cleanup(id)
        }
    }
}

/// Approvals with real workers: a definition that needs one before every run, a handler that asks for one, decisions
/// and expiry.
@Suite("Approvals", .serialized)
struct ApprovalTests {
    @Test("an approval-gated run holds no slot or lock while it waits, proceeds on approve, ends on reject and on expiry")
    func approvals() async throws {
        try await withWorkerHarness { h in
            let gate = TestEnvironment.uniqueName("gate-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: gate, trigger: "screen.\(gate)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'in=$(cat); printf ''{"input": %s, "permissions": "%s"}'' "$in" "$AGENTRY_PERMISSIONS"']
                        """,
                    config: "max_parallel_tasks: 1\napproval_required_for: [devices.take_control]",
                    extra: "permissions: {devices: [take_control, reboot]}\nresources: ['device:{{payload.device_id}}']\n"))
            let asker = TestEnvironment.uniqueName("asker-")
            let script =
                #"in=$(cat); case "$in" in *'"approval"'*) printf '{"input": %s}' "$in" ;; *quick*) printf '{"request_approval": {"permission": "reboot", "reason": "quick", "expires_in_seconds": 1}}' ;; *) printf '{"request_approval": {"permission": "reboot", "reason": "tv-3 is black", "then": {"action": "reboot"}}}' ;; esac"#
            _ = try await h.publishAgent(
                agentYAML(
                    id: asker, trigger: "ask.\(asker)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                        """,
                    config: "approval_required_for: [devices.reboot]", extra: "permissions: {devices: [reboot]}\n"))
            let worker = try WorkerProcess(agents: [gate, asker], eventLog: true)
            let control = ApprovalControl(store: h.store, bus: h.bus, logger: TestEnvironment.logger)
            let first = Event(type: "screen.\(gate)", payload: ["device_id": "tv-1"], source: "test")
            let second = Event(type: "screen.\(gate)", payload: ["device_id": "tv-1"], source: "test")
            try await h.bus.publish(first)
            try await h.bus.publish(second)
            // max_parallel_tasks is 1: both wait at once only because a waiting run gives its slot back.
            _ = try await h.waitForRuns(gate) { runs in runs.filter { $0.state == .awaitingApproval }.count == 2 }
            let device = ResourceKey(type: "device", id: "tv-1")
            let lockFree = try await LockStore(database: h.database, logger: TestEnvironment.logger).isAvailable(device)
            #expect(lockFree, "no lock is held while runs wait for their approvals")
            let pending = try await h.store.approvals.list(state: .pending).filter { $0.agentID == gate }
            #expect(pending.count == 2)
            #expect(pending.allSatisfy { $0.permission == "devices.take_control" && $0.origin == .definition })
            let runs = try await h.runs(gate)
            let firstRun = try #require(runs.first { $0.eventID == first.id.rawValue })
            let firstApproval = try #require(pending.first { $0.runID == firstRun.runID })
            let secondApproval = try #require(pending.first { $0.runID != firstRun.runID })

            _ = try await control.decide(firstApproval.approvalID, approve: true, by: "test", comment: "go ahead")
            let approved = try await h.waitForRuns(gate) { $0.contains { $0.eventID == first.id.rawValue && $0.state == .succeeded } }
                .first { $0.eventID == first.id.rawValue }
            let value = try JSON.parse(Array((approved?.result ?? "{}").utf8))
            #expect(value[path: "input.approval.state"]?.stringValue == "approved", "\(approved?.result ?? "-")")
            #expect(value[path: "input.approval.decided_by"]?.stringValue == "test")
            #expect(value[path: "input.approval.comment"]?.stringValue == "go ahead")
            #expect(value[path: "permissions"]?.stringValue == "devices.take_control,devices.reboot")
            await #expect(throws: ApprovalControl.Refusal.self) {
                _ = try await control.decide(firstApproval.approvalID, approve: false, by: "test")
            }

            _ = try await control.decide(secondApproval.approvalID, approve: false, by: "test", comment: "not now")
            let rejected = try #require(try await h.store.run(id: secondApproval.runID))
            #expect(rejected.state == .rejected)
            #expect(rejected.message == "rejected by test: not now")

            // A handler asks; approved, it is called again with `then`. Asked with a 1 s expiry, nobody answers.
            let ask = Event(type: "ask.\(asker)", payload: [:], source: "test")
            try await h.bus.publish(ask)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    try await h.store.approvals.list(state: .pending).contains { $0.agentID == asker }
                })
            let asked = try #require(try await h.store.approvals.list(state: .pending).first { $0.agentID == asker })
            #expect(asked.permission == "devices.reboot")
            #expect(asked.origin == .handler)
            _ = try await control.decide(asked.approvalID, approve: true, by: "test")
            let done = try await h.waitForRuns(asker) { $0.contains { $0.eventID == ask.id.rawValue && $0.state == .succeeded } }
                .first { $0.eventID == ask.id.rawValue }
            let answer = try JSON.parse(Array((done?.result ?? "{}").utf8))
            #expect(answer[path: "input.approval.then.action"]?.stringValue == "reboot", "\(done?.result ?? "-")")
            #expect(done?.steps == 2)

            let quick = Event(type: "ask.\(asker)", payload: ["quick": .bool(true)], source: "test")
            try await h.bus.publish(quick)
            let expired = try await h.waitForRuns(asker, timeout: .seconds(30)) {
                $0.contains { $0.eventID == quick.id.rawValue && $0.state == .rejected }
            }
            .first { $0.eventID == quick.id.rawValue }
            #expect(expired?.message?.contains("expired") == true, "\(expired?.message ?? "-")")
            let log = EventLogStore(database: h.database, logger: TestEnvironment.logger)
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    try await log.recent(limit: 100, type: "approval.decided").contains { $0.event.payload["state"] == "expired" }
                })
            #expect(try await log.recent(limit: 100, type: "approval.requested").count >= 4)
            await worker.stop()
            await h.cleanup(gate)
            await h.cleanup(asker)
        }
    }
}
