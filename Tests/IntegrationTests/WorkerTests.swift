import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Handlers end to end, limits across workers, priorities, busy policy and lifecycle events.
@Suite("Workers", .serialized)
struct WorkerTests {
    @Test("an exec handler gets the event on stdin and its identity in env; its JSON result is recorded and its follow-up events published")
    func execEndToEnd() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("exec-")
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(id).path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let script =
                #"cat > stdin.json; printf '{"run": "%s", "event": "%s", "greeting": "%s", "events": [{"type": "done.%s", "payload": {"n": 1}, "priority": "high"}]}' "$AGENTRY_RUN_ID" "$AGENTRY_EVENT_ID" "$GREETING" "$AGENTRY_AGENT_ID"; echo oops >&2"#
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)", filters: "{kind: good}",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, '\(script.replacingOccurrences(of: "'", with: "''"))']
                          env: {GREETING: "hello {{payload.name}}"}
                          working_directory: \(dir)
                        """))
            let followUps = try await h.bus.subscribe(to: "done.\(id)")
            let lifecycle = try await h.bus.subscribe(to: "agent.task.*")
            let worker = try WorkerProcess(agents: [id])
            let event = Event(type: "work.\(id)", payload: ["kind": "good", "name": "ada"], priority: .normal, source: "test")
            try await h.bus.publish(event)
            try await h.bus.publish(Event(type: "work.\(id)", payload: ["kind": "bad"], priority: .normal, source: "test"))

            let runs = try await h.waitForRuns(id) { runs in runs.filter { $0.state.isFinished }.count == 2 }
            await worker.stop()
            let done = try #require(runs.first { $0.eventID == event.id.rawValue }, "runs: \(runs)")
            #expect(done.state == .succeeded, "\(done)")
            #expect(done.exitStatus == 0)
            #expect(done.stderr == "oops")
            let result = try #require(done.result.flatMap { try? JSON.parse(Array($0.utf8)) })
            #expect(result[path: "run"]?.stringValue == done.runID.uuidString.lowercased())
            #expect(result[path: "event"]?.stringValue == event.id.rawValue)
            #expect(result[path: "greeting"]?.stringValue == "hello ada")
            // The envelope arrived on stdin.
            let stdin = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/stdin.json"))))
            #expect(stdin[path: "id"]?.stringValue == event.id.rawValue)
            #expect(stdin[path: "payload.name"]?.stringValue == "ada")
            // The other event did not pass the filter: skipped with the reason.
            let skipped = try #require(runs.first { $0.eventID != event.id.rawValue })
            #expect(skipped.state == .skipped)
            #expect(skipped.message?.contains("payload.kind is 'bad', not 'good'") == true, "\(skipped.message ?? "")")
            // The follow-up event, caused by the triggering event.
            var iterator = followUps.makeAsyncIterator()
            let received = try #require(try await iterator.next())
            #expect(received.event.causationID == event.id.rawValue)
            #expect(received.event.correlationID == event.id.rawValue)
            #expect(received.event.priority == .high)
            #expect(received.event.payload["n"] == .int(1))
            received.ack()
            followUps.cancel()
            // agent.task.started and agent.task.completed are logged once each, by the statements that record the
            // run (they go past the event log's queue), and still reach whoever subscribes to them.
            let runID = done.runID.uuidString.lowercased()
            let log = EventLogStore(database: h.database, logger: TestEnvironment.logger)
            for type in ["agent.task.started", "agent.task.completed"] {
                let logged = try await log.recent(limit: 1000, type: type).filter { $0.event.payload["run_id"]?.stringValue == runID }
                #expect(logged.count == 1, "\(type) of run \(runID) is in event_log \(logged.count) times")
                #expect(logged.first?.event.causationID == event.id.rawValue)
                #expect(logged.first?.event.payload["agent_id"]?.stringValue == id)
            }
            var announced: [String] = []
            var lifecycleEvents = lifecycle.makeAsyncIterator()
            while announced.count < 2, let next = try await lifecycleEvents.next() {
                next.ack()
                if next.event.payload["run_id"]?.stringValue == runID { announced.append(next.event.type) }
            }
            lifecycle.cancel()
            #expect(announced == ["agent.task.started", "agent.task.completed"])
            await h.cleanup(id)
        }
    }

    @Test("an http handler POSTs the envelope; a 2xx JSON answer is the result and its events are published; a 500 fails the run")
    func httpEndToEnd() async throws {
        try await withWorkerHarness { h in
            let server = try await HTTPTestServer()
            defer { server.stop() }
            let id = TestEnvironment.uniqueName("http-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "hook.\(id)",
                    handler: """
                        http:
                          url: http://127.0.0.1:\(server.port)/{{payload.path}}
                          headers: {X-Test: "{{payload.path}}"}
                          timeout_seconds: 5
                        """, config: "auto_retry: false"))
            let followUps = try await h.bus.subscribe(to: "answered.#")
            let worker = try WorkerProcess(agents: [id])
            let good = Event(type: "hook.\(id)", payload: ["path": "ok"], priority: .high, source: "test")
            let bad = Event(type: "hook.\(id)", payload: ["path": "fail"], priority: .high, source: "test")
            try await h.bus.publish(good)
            try await h.bus.publish(bad)
            let runs = try await h.waitForRuns(id) { runs in runs.filter { $0.state.isFinished }.count == 2 }
            await worker.stop()
            let ok = try #require(runs.first { $0.eventID == good.id.rawValue })
            #expect(ok.state == .succeeded, "\(ok)")
            #expect(ok.exitStatus == 200)
            let result = try #require(ok.result.flatMap { try? JSON.parse(Array($0.utf8)) })
            #expect(result[path: "received_id"]?.stringValue == good.id.rawValue)
            #expect(result[path: "header"]?.stringValue == "ok")
            let failed = try #require(runs.first { $0.eventID == bad.id.rawValue })
            #expect(failed.state == .failed)
            #expect(failed.exitStatus == 500)
            #expect(failed.message?.contains("answered 500") == true, "\(failed.message ?? "")")
            var iterator = followUps.makeAsyncIterator()
            let received = try #require(try await iterator.next())
            #expect(received.event.type == "answered.ok")
            #expect(received.event.causationID == good.id.rawValue)
            received.ack()
            followUps.cancel()
            await h.cleanup(id)
        }
    }

    @Test("a timed-out exec handler's whole process group is stopped and the run recorded as timed out")
    func timeoutKillsProcessGroup() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("timeout-")
            let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).pids").path
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            // The handler starts a grandchild that ignores nothing, then waits; both must be gone after the timeout.
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "slow.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'sleep 300 & echo $! > \(pidFile); echo $$ >> \(pidFile); sleep 300']
                        """, config: "timeout_seconds: 1\nauto_retry: false"))
            let worker = try WorkerProcess(agents: [id], extra: [])
            try await h.bus.publish(Event(type: "slow.\(id)", priority: .normal, source: "test"))
            let runs = try await h.waitForRuns(id) { $0.first?.state.isFinished == true }
            let run = try #require(runs.first)
            #expect(run.state == .timedOut, "\(run)")
            #expect(run.message?.contains("timeout_seconds") == true)
            let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
            #expect(pids.count == 2)
            let gone = try await TestEnvironment.eventually(timeout: .seconds(10)) { pids.allSatisfy { !isRunning($0) } }
            #expect(gone, "still alive: \(pids.filter(isRunning))")
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("a failing run is retried with backoff, then parked in agentry.dead with agent.task.failed; a replay runs it afresh")
    func retriesThenDeadLetter() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("retry-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "flaky.\(id)", priority: "high",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'echo "no luck on try $AGENTRY_ATTEMPT" >&2; exit 3']
                        """, extra: "retry:\n  attempts: 3\n  backoff: {initial_seconds: 0.5, multiplier: 2, max_seconds: 5}\n"))
            let failures = try await h.bus.subscribe(to: "agent.task.failed")
            let worker = try WorkerProcess(agents: [id])
            let event = Event(type: "flaky.\(id)", payload: ["x": 1], priority: .high, source: "test")
            try await h.bus.publish(event)
            let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.filter { $0.state == .failed }.count == 3 }
            let ordered = runs.sorted { $0.attempt < $1.attempt }
            #expect(ordered.map(\.attempt) == [1, 2, 3], "\(runs)")
            #expect(ordered.allSatisfy { $0.exitStatus == 3 && $0.priority == .high })
            #expect(ordered[1].stderr == "no luck on try 2")
            // Backoff 0.5 s then 1 s, each ±20 %: the gaps grow.
            let gap1 = ordered[1].startedAt.timeIntervalSince(ordered[0].finishedAt!)
            let gap2 = ordered[2].startedAt.timeIntervalSince(ordered[1].finishedAt!)
            #expect(gap1 >= 0.35 && gap1 < 3, "gap 1: \(gap1)")
            #expect(gap2 >= 0.75 && gap2 < 4, "gap 2: \(gap2)")
            #expect(ordered[0].retryAt != nil && ordered[2].retryAt == nil)

            var failed: ReceivedEvent?
            for try await received in failures {
                received.ack()
                if received.event.payload["agent_id"] == .string(id) {
                    failed = received
                    break
                }
            }
            failures.cancel()
            #expect(failed?.event.payload["event_id"] == .string(event.id.rawValue))
            #expect(failed?.event.payload["attempts"] == .int(3))
            #expect(failed?.event.priority == .high)

            let parked = try await DeadLetters.list(on: h.connection, limit: 10_000).filter { $0.id == event.id.rawValue }
            #expect(parked.count == 1)
            #expect(parked.first?.reason == "task-failed")
            #expect(parked.first?.message.contains("attempt 3 of 3") == true)

            // Replayed, the event goes to this agent's queue only and gets three fresh tries.
            let dead = DeadLetters(channel: try await h.connection.openChannel())
            let replayed = try await dead.replay(on: h.connection, ids: [event.id.rawValue])
            #expect(replayed.count == 1)
            let again = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.filter { $0.state == .failed }.count == 6 }
            #expect(again.filter { $0.attempt == 1 }.count == 2)
            await worker.stop()
            #expect(
                try await DeadLetters.list(on: h.connection, limit: 10_000).filter { $0.id == event.id.rawValue }.count == 1,
                "the second round parks it again")
            await h.cleanup(id)
            // Its agent's queue is gone: a replay reaches no queue, so it stays parked; a delete keeps the shared
            // parking lot clean.
            let report = try await dead.replayReport(on: h.connection, selection: .ids([event.id.rawValue]))
            #expect(report.replayed.isEmpty && report.refused.first?.reason.contains("no queue took it") == true, "\(report.refused)")
            #expect(try await DeadLetters.delete(on: h.connection, selection: .ids([event.id.rawValue])).count == 1)
        }
    }

    @Test("max_parallel_tasks holds across two worker processes, measured from task_runs")
    func parallelLimitAcrossWorkers() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("limit-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "busy.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "0.3"]
                        """, config: "max_parallel_tasks: 2"))
            let workers = [try WorkerProcess(agents: [id]), try WorkerProcess(agents: [id])]
            for n in 0..<12 {
                try await h.bus.publish(Event(type: "busy.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let runs = try await h.waitForRuns(id, timeout: .seconds(40)) { $0.filter { $0.state == .succeeded }.count == 12 }
            for worker in workers { await worker.stop() }
            #expect(runs.filter { $0.state == .succeeded }.count == 12)
            #expect(maxOverlap(runs) <= 2, "overlap \(maxOverlap(runs))")
            #expect(maxOverlap(runs) == 2, "the limit is 2, and 12 waiting tasks should fill it")
            #expect(Set(runs.compactMap(\.workerID)).count == 2, "both workers should have run tasks")
            await h.cleanup(id)
        }
    }

    @Test("workers divide an agent's limit: each holds its share of the deliveries, and one left alone takes all of it")
    func workersShareTheLimit() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("share-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "share.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "0.4"]
                        """, config: "max_parallel_tasks: 4"))
            let first = try WorkerProcess(agents: [id])
            let second = try WorkerProcess(agents: [id])
            /// Waits until `instances` instances take events (each counting the others with a heartbeat: 0.5 s in
            /// tests) and their rows show the prefetch they took; returns those prefetches.
            func settle(instances: Int, expecting expected: [Int]) async throws -> [Int] {
                #expect(
                    try await TestEnvironment.eventually {
                        try await h.store.consumingInstances(agentID: id, expiry: .seconds(3))[id] == instances
                    })
                let prefetches = { try await h.store.instances(agentID: id).compactMap(\.consumingPrefetch) }
                _ = try await TestEnvironment.eventually { try await prefetches() == expected }
                return try await prefetches()
            }
            func publish(_ numbers: Range<Int>) async throws {
                for n in numbers {
                    try await h.bus.publish(Event(type: "share.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
                }
            }
            // Both instances take events: the rows show a prefetch of 2, half the limit.
            let halves = try await settle(instances: 2, expecting: [2, 2])
            #expect(halves == [2, 2], "each instance's prefetch should be 2, half the limit: \(halves)")
            try await publish(0..<16)
            let shared = try await h.waitForRuns(id, timeout: .seconds(40)) { $0.filter { $0.state == .succeeded }.count == 16 }
            let byWorker = Dictionary(grouping: shared, by: { $0.workerID ?? "none" })
            #expect(byWorker.count == 2, "both workers should have run tasks: \(byWorker.mapValues(\.count))")
            for (worker, runs) in byWorker {
                #expect(maxOverlap(runs) <= 2, "\(worker) ran \(maxOverlap(runs)) at once; its share of 4 among 2 is 2")
            }
            #expect(maxOverlap(shared) == 4, "together they fill the limit: overlap \(maxOverlap(shared))")

            // Alone, the second worker takes the whole limit again (from its next heartbeat on).
            await first.stop()
            let whole = try await settle(instances: 1, expecting: [4])
            #expect(whole == [4], "the instance left should take the whole limit of 4: \(whole)")
            try await publish(16..<24)
            let all = try await h.waitForRuns(id, timeout: .seconds(40)) { $0.filter { $0.state == .succeeded }.count == 24 }
            await second.stop()
            let earlier = Set(shared.map(\.runID))
            let alone = all.filter { !earlier.contains($0.runID) }
            #expect(alone.count == 8)
            #expect(Set(alone.compactMap(\.workerID)).count == 1)
            #expect(maxOverlap(alone) == 4, "alone it takes the whole limit: overlap \(maxOverlap(alone))")
            await h.cleanup(id)
        }
    }

    @Test("a CRITICAL event queued behind 1,000 LOW events starts within the first few runs")
    func priorityBehindBacklog() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("prio-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "job.\(id)", priority: "low", handler: "builtin: noop",
                    config: "max_parallel_tasks: 2\ntask_events: false"))
            for n in 0..<1000 {
                try await h.bus.publish(Event(type: "job.\(id)", payload: ["n": .int(Int64(n))], priority: .low, source: "test"))
            }
            let critical = Event(type: "job.\(id)", payload: ["urgent": true], priority: .critical, source: "test")
            try await h.bus.publish(critical)
            let worker = try WorkerProcess(agents: [id])
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) {
                $0.contains { $0.eventID == critical.id.rawValue && $0.state.isFinished }
            }
            await worker.stop()
            let ordered = runs.sorted { $0.startedAt < $1.startedAt }
            let position = try #require(ordered.firstIndex { $0.eventID == critical.id.rawValue })
            #expect(position < 4, "the CRITICAL event started as run \(position + 1)")
            // The worker's part of the order, from the run records: no LOW delivery it received after the CRITICAL one
            // started first. Every run knows when its delivery arrived, between its publish and its start.
            let problems = Self.deliveryOrderProblems(ordered, critical: position)
            #expect(problems.overtaking.isEmpty, "LOW runs received after the CRITICAL one but started before it: \(problems.overtaking)")
            #expect(
                problems.unordered.isEmpty, "runs without received_at, or received before their publish or after their start: \(problems.unordered)")
            await h.cleanup(id)
        }
    }

    /// Runs (sorted by start) that started before the one at `critical` although their delivery arrived after its
    /// delivery; and runs whose received_at is missing or not between their publish and their start.
    static func deliveryOrderProblems(_ ordered: [TaskRun], critical: Int) -> (overtaking: [UUID], unordered: [UUID]) {
        let received = ordered[critical].receivedAt ?? .distantFuture
        var overtaking: [UUID] = []
        var unordered: [UUID] = []
        for (index, run) in ordered.enumerated() {
            if index < critical, (run.receivedAt ?? .distantPast) > received { overtaking.append(run.runID) }
            guard let arrived = run.receivedAt, let published = run.eventAt,
                arrived.timeIntervalSince(published) > -0.005, run.startedAt.timeIntervalSince(arrived) > -0.005
            else {
                unordered.append(run.runID)
                continue
            }
        }
        return (overtaking, unordered)
    }

    @Test("on_busy: drop records events that find the agent at its limit as skipped, and runs the rest")
    func busyDrop() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("drop-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "burst.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "1"]
                        """, config: "max_parallel_tasks: 1", extra: "on_busy: drop\n"))
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "burst.\(id)", priority: .normal, source: "test"))
            _ = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            for _ in 0..<3 { try await h.bus.publish(Event(type: "burst.\(id)", priority: .normal, source: "test")) }
            let runs = try await h.waitForRuns(id) { $0.filter { $0.state.isFinished }.count == 4 }
            await worker.stop()
            #expect(runs.filter { $0.state == .succeeded }.count == 1, "\(runs.map(\.state))")
            var dropped: [TaskRun] = []
            for run in runs where run.state == .skipped { dropped.append(run) }
            #expect(dropped.count == 3, "\(runs.map(\.state))")
            #expect(dropped.allSatisfy { $0.message?.contains("on_busy: drop") == true }, "\(dropped.map { $0.message ?? "" })")
            await h.cleanup(id)
        }
    }

    @Test("agent.task.started carries the moment its run started, also for a run that waited for the agent's only slot")
    func startedAnnouncementTime() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("stamp-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "stamp.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "1"]
                        """, config: "max_parallel_tasks: 1"))
            // Two workers, each holding a delivery (a share of one slot is one): the second delivery waits in its
            // worker, retrying its claim, until the first run gives the slot back.
            let first = try WorkerProcess(agents: [id])
            let second = try WorkerProcess(agents: [id])
            #expect(
                try await TestEnvironment.eventually {
                    let instances = try await h.store.consumingInstances(agentID: id, expiry: .seconds(3))[id]
                    let consumers = try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount
                    return instances == 2 && consumers == 2
                })
            for n in 0..<2 {
                try await h.bus.publish(Event(type: "stamp.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test"))
            }
            let runs = try await h.waitForRuns(id) { $0.filter { $0.state == .succeeded }.count == 2 }
            await first.stop()
            await second.stop()
            let ordered = runs.sorted { $0.startedAt < $1.startedAt }
            #expect(Set(ordered.compactMap(\.workerID)).count == 2, "each worker should have run one: \(ordered.map { $0.workerID ?? "" })")
            #expect(
                ordered[1].startedAt.timeIntervalSince(ordered[0].startedAt) > 0.9, "the second run waited for the slot: \(ordered.map(\.startedAt))")
            let log = EventLogStore(database: h.database, logger: TestEnvironment.logger)
            let started = try await log.recent(limit: 1000, type: "agent.task.started")
            for run in ordered {
                let runID = run.runID.uuidString.lowercased()
                let announcement = try #require(
                    started.first { $0.event.payload["run_id"]?.stringValue == runID }, "no agent.task.started for run \(runID)")
                let gap = announcement.event.timestamp.timeIntervalSince(run.startedAt)
                // Stamped as the claim that records the run is written; started_at is the claim's own clock.
                #expect(abs(gap) < 0.1, "agent.task.started of run \(runID) is stamped \(gap) s from the run's start")
            }
            await h.cleanup(id)
        }
    }
}
