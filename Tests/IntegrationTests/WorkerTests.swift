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

@Suite("Workers", .serialized)
struct WorkerTests {
    @Test("an exec handler gets the event on stdin and its identity in env; its JSON result is recorded and its follow-up events published")
    func execEndToEnd() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("exec-")
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(id).path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let script = #"cat > stdin.json; printf '{"run": "%s", "event": "%s", "greeting": "%s", "events": [{"type": "done.%s", "payload": {"n": 1}, "priority": "high"}]}' "$AGENTRY_RUN_ID" "$AGENTRY_EVENT_ID" "$GREETING" "$AGENTRY_AGENT_ID"; echo oops >&2"#
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "work.\(id)", filters: "{kind: good}", handler: """
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
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "hook.\(id)", handler: """
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
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "slow.\(id)", handler: """
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
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "flaky.\(id)", priority: "high", handler: """
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
                if received.event.payload["agent_id"] == .string(id) { failed = received; break }
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
            #expect(try await DeadLetters.list(on: h.connection, limit: 10_000).filter { $0.id == event.id.rawValue }.count == 1,
                    "the second round parks it again")
            await h.cleanup(id)
            // Unpark it: replayed to the deleted queue, it is dropped, and the shared parking lot stays clean.
            _ = try await dead.replay(on: h.connection, ids: [event.id.rawValue])
        }
    }

    @Test("max_parallel_tasks holds across two worker processes, measured from task_runs")
    func parallelLimitAcrossWorkers() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("limit-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "busy.\(id)", handler: """
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
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "share.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "0.4"]
                """, config: "max_parallel_tasks: 4"))
            let first = try WorkerProcess(agents: [id])
            let second = try WorkerProcess(agents: [id])
            /// Waits until `instances` instances take events (each counting the others with a heartbeat: 0.5 s in
            /// tests) and their rows show the prefetch they took; returns those prefetches.
            func settle(instances: Int, expecting expected: [Int]) async throws -> [Int] {
                #expect(try await TestEnvironment.eventually {
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

    @Test("a worker killed with SIGKILL mid-task: the task completes exactly once on the other worker")
    func sigkillRecovery() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("kill-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "long.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "2"]
                """, config: "max_parallel_tasks: 1"))
            let first = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "long.\(id)", priority: .normal, source: "test"))
            let running = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            let victim = try #require(running.first { $0.state == .running }?.workerID)
            let second = try WorkerProcess(agents: [id])
            // Which process runs it? Only the first one was up when the event arrived.
            first.signal(SIGKILL)
            await first.wait()
            let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.state == .succeeded } }
            #expect(try await TestEnvironment.waitUntilSettled("agentry.agent.\(id)"), "every delivery of the event was settled")
            let final = try await h.runs(id)
            await second.stop()
            #expect(final.filter { $0.state == .succeeded }.count == 1, "\(final.map(\.state))")
            let lost = final.filter { $0.state == .lost }
            #expect(lost.count == 1)
            #expect(lost.first?.workerID == victim)
            #expect(runs.first { $0.state == .succeeded }?.workerID != victim)
            let instances = try await h.store.instances(agentID: id)
            #expect(instances.first { $0.workerID == victim }?.state == .error, "\(instances)")
            await h.cleanup(id)
        }
    }

    @Test("a run longer than the ack deadline is handed over (acked, not redelivered); if its worker dies, another runs it once")
    func longRunHandover() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("long-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "long.\(id)", handler: """
                exec:
                  command: [/bin/sh, -c, 'sleep 3; echo "{\\"attempt\\": $AGENTRY_ATTEMPT}"']
                """, config: "max_parallel_tasks: 1"))
            let first = try WorkerProcess(agents: [id], extra: ["--ack-deadline-seconds", "1"])
            try await h.bus.publish(Event(type: "long.\(id)", priority: .normal, source: "test"))
            _ = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            // Past the deadline the delivery is acked while the task still runs: nothing unacked, nothing ready.
            let acked = try await TestEnvironment.eventually(timeout: .seconds(4)) {
                let listing = try TestEnvironment.run("rabbitmqctl", ["list_queues", "-p", TestEnvironment.configuration.amqp.virtualHost, "-q", "--no-table-headers", "name", "messages"])
                let line = listing.output.split(separator: "\n").first { $0.hasPrefix("agentry.agent.\(id)\t") }
                return line?.hasSuffix("\t0") == true
            }
            #expect(acked, "the long run's delivery should be acked after the deadline")
            #expect(try await h.runs(id).map(\.state) == [.running])
            // The worker dies: the run was acked, so only the handover brings the event back, through a live worker.
            let second = try WorkerProcess(agents: [id], extra: ["--ack-deadline-seconds", "1"])
            first.signal(SIGKILL)
            await first.wait()
            let runs = try await h.waitForRuns(id, timeout: .seconds(30)) { $0.contains { $0.state == .succeeded } }
            #expect(try await TestEnvironment.waitUntilSettled("agentry.agent.\(id)"), "every delivery of the event was settled")
            let final = try await h.runs(id)
            await second.stop()
            #expect(final.filter { $0.state == .succeeded }.count == 1, "\(final.map(\.state))")
            #expect(final.filter { $0.state == .lost }.count == 1)
            #expect(runs.first { $0.state == .succeeded }?.workerID != final.first { $0.state == .lost }?.workerID)
            await h.cleanup(id)
        }
    }

    @Test("a redelivered event whose run already succeeded is acked without running again")
    func exactlyOnceCompletion() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("once-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "once.\(id)", handler: "builtin: noop"))
            let worker = try WorkerProcess(agents: [id])
            let event = Event(type: "once.\(id)", payload: ["n": 1], priority: .normal, source: "test")
            // The same message twice, straight into the agent's queue, as a redelivery would bring it.
            let channel = try await h.connection.openChannel()
            var message = EventBus.message(for: event)
            message.exchange = ""
            message.routingKey = "agentry.agent.\(id)"
            try await channel.publish(message)
            _ = try await h.waitForRuns(id) { $0.contains { $0.state == .succeeded } }
            try await channel.publish(message)
            let drained = try await TestEnvironment.waitUntilSettled("agentry.agent.\(id)")
            await worker.stop()
            #expect(drained)
            let runs = try await h.runs(id)
            #expect(runs.count == 1, "\(runs.map(\.state))")
            await h.cleanup(id)
        }
    }

    @Test("a CRITICAL event queued behind 1,000 LOW events starts within the first few runs")
    func priorityBehindBacklog() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("prio-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "job.\(id)", priority: "low", handler: "builtin: noop",
                                                   config: "max_parallel_tasks: 2\ntask_events: false"))
            for n in 0..<1000 {
                try await h.bus.publish(Event(type: "job.\(id)", payload: ["n": .int(Int64(n))], priority: .low, source: "test"))
            }
            let critical = Event(type: "job.\(id)", payload: ["urgent": true], priority: .critical, source: "test")
            try await h.bus.publish(critical)
            let worker = try WorkerProcess(agents: [id])
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { $0.contains { $0.eventID == critical.id.rawValue && $0.state.isFinished } }
            await worker.stop()
            let ordered = runs.sorted { $0.startedAt < $1.startedAt }
            let position = try #require(ordered.firstIndex { $0.eventID == critical.id.rawValue })
            #expect(position < 4, "the CRITICAL event started as run \(position + 1)")
            // The worker's part of the order, from the run records: no LOW delivery it received after the CRITICAL one
            // started first. Every run knows when its delivery arrived, between its publish and its start.
            let problems = Self.deliveryOrderProblems(ordered, critical: position)
            #expect(problems.overtaking.isEmpty, "LOW runs received after the CRITICAL one but started before it: \(problems.overtaking)")
            #expect(problems.unordered.isEmpty, "runs without received_at, or received before their publish or after their start: \(problems.unordered)")
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
                  arrived.timeIntervalSince(published) > -0.005, run.startedAt.timeIntervalSince(arrived) > -0.005 else {
                unordered.append(run.runID)
                continue
            }
        }
        return (overtaking, unordered)
    }

    @Test("pause, resume, stop and start reach every worker and persist for workers that start later")
    func controlAcrossWorkers() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("ctl-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "ctl.\(id)", handler: "builtin: noop"))
            let control = AgentControl(store: h.store, connection: h.connection)
            let workers = [try WorkerProcess(agents: [id]), try WorkerProcess(agents: [id])]
            func states() async throws -> [InstanceRecord.State] { try await h.store.instances(agentID: id).map(\.state) }
            func expectStates(_ expected: [InstanceRecord.State], sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let reached = try await TestEnvironment.eventually(timeout: .seconds(5)) { try await states() == expected }
                let actual = try await states()
                #expect(reached, "instances are \(actual), expected \(expected)", sourceLocation: sourceLocation)
            }
            try await expectStates([.idle, .idle])

            try await control.set(.paused, agentID: id)
            try await expectStates([.paused, .paused])
            for _ in 0..<5 { try await h.bus.publish(Event(type: "ctl.\(id)", priority: .normal, source: "test")) }
            // All five arrived and none was taken (no delivery outstanding) though both workers are up.
            #expect(try await TestEnvironment.eventually { try TestEnvironment.queueCounts("agentry.agent.\(id)").map { $0.ready == 5 && $0.unacked == 0 } ?? false })
            #expect(try await h.runs(id).isEmpty)

            // A worker that starts now obeys the persisted pause.
            let late = try WorkerProcess(agents: [id])
            try await expectStates([.paused, .paused, .paused])

            try await control.set(.running, agentID: id)
            let runs = try await h.waitForRuns(id) { $0.filter { $0.state == .succeeded }.count == 5 }
            #expect(runs.count == 5)

            try await control.set(.stopped, agentID: id)
            try await expectStates([.stopped, .stopped, .stopped])
            #expect(try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount == 0)
            try await control.set(.running, agentID: id)
            try await expectStates([.idle, .idle, .idle])
            // A starting instance writes its row before its consumer is open: the consumers follow within moments.
            let consuming = try await TestEnvironment.eventually(timeout: .seconds(5)) {
                try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount == 3
            }
            let consumers = try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount
            #expect(consuming, "consumers: \(consumers)")
            for worker in workers + [late] { await worker.stop() }
            await h.cleanup(id)
        }
    }

    @Test("on_busy: drop records events that find the agent at its limit as skipped, and runs the rest")
    func busyDrop() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("drop-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "burst.\(id)", handler: """
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
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "stamp.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "1"]
                """, config: "max_parallel_tasks: 1"))
            // Two workers, each holding a delivery (a share of one slot is one): the second delivery waits in its
            // worker, retrying its claim, until the first run gives the slot back.
            let first = try WorkerProcess(agents: [id])
            let second = try WorkerProcess(agents: [id])
            #expect(try await TestEnvironment.eventually {
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
            #expect(ordered[1].startedAt.timeIntervalSince(ordered[0].startedAt) > 0.9, "the second run waited for the slot: \(ordered.map(\.startedAt))")
            let log = EventLogStore(database: h.database, logger: TestEnvironment.logger)
            let started = try await log.recent(limit: 1000, type: "agent.task.started")
            for run in ordered {
                let runID = run.runID.uuidString.lowercased()
                let announcement = try #require(started.first { $0.event.payload["run_id"]?.stringValue == runID }, "no agent.task.started for run \(runID)")
                let gap = announcement.event.timestamp.timeIntervalSince(run.startedAt)
                // Stamped as the claim that records the run is written; started_at is the claim's own clock.
                #expect(abs(gap) < 0.1, "agent.task.started of run \(runID) is stamped \(gap) s from the run's start")
            }
            await h.cleanup(id)
        }
    }

    @Test("cancelling a running run stops its process group and records it as cancelled; the event is not run again")
    func cancelRunningRun() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("cancel-")
            let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).pid").path
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "cancel.\(id)", handler: """
                exec:
                  command: [/bin/sh, -c, 'echo $$ > \(pidFile); sleep 60']
                """))
            let stopped = try await h.bus.subscribe(to: "agent.task.#")
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "cancel.\(id)", priority: .normal, source: "test"))
            let running = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            let run = try #require(running.first)
            _ = try await TestEnvironment.eventually { FileManager.default.fileExists(atPath: pidFile) }
            let control = AgentControl(store: h.store, connection: h.connection)
            _ = try await control.cancel(runID: run.runID, by: "the test")
            let runs = try await h.waitForRuns(id) { $0.first?.state == .cancelled }
            #expect(runs.map(\.state) == [.cancelled])
            #expect(runs.first?.message == "cancelled by the test")
            let pid = Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(try await TestEnvironment.eventually { !isRunning(pid) }, "the handler (pid \(pid)) should be gone")
            // Cancelling again says why it cannot.
            await #expect(throws: StoreError.self) { _ = try await control.cancel(runID: run.runID, by: "the test") }
            #expect(try await TestEnvironment.waitUntilSettled("agentry.agent.\(id)"), "a cancelled event is not requeued")
            // Only agent.task.started: a cancelled run is neither completed nor failed.
            var types: [String] = []
            var iterator = stopped.makeAsyncIterator()
            if let first = try await iterator.next() { types.append(first.event.type); first.ack() }
            stopped.cancel()
            #expect(types == ["agent.task.started"])
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("cancelling a run that waits for its retry drops the retry when it comes back")
    func cancelQueuedRetry() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("unretry-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "oops.\(id)", handler: """
                exec:
                  command: [/bin/false]
                """, extra: "retry:\n  attempts: 3\n  backoff: {initial_seconds: 2}\n"))
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "oops.\(id)", priority: .normal, source: "test"))
            let failed = try await h.waitForRuns(id) { $0.first?.state == .failed }
            let run = try #require(failed.first)
            #expect(run.retryAt != nil)
            _ = try await AgentControl(store: h.store, connection: h.connection).cancel(runID: run.runID, by: "the test")
            // The retry is due after 2 s (±20 %); give it time to come back and be dropped.
            try await Task.sleep(for: .seconds(4))
            let runs = try await h.runs(id)
            let status = try await h.connection.queueStatus("agentry.agent.\(id)")
            await worker.stop()
            #expect(runs.count == 1, "\(runs.map(\.state))")
            #expect(runs.first?.message?.contains("retry cancelled by the test") == true, "\(runs.first?.message ?? "")")
            #expect(status.messageCount == 0)
            await h.cleanup(id)
        }
    }

    @Test("a newly published version reaches running workers: its limit and handler apply to the next events")
    func newVersionReachesWorkers() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("upgrade-")
            let v1 = agentYAML(id: id, trigger: "up.\(id)", handler: "builtin: noop", config: "max_parallel_tasks: 1")
            _ = try await h.publishAgent(v1)
            let worker = try WorkerProcess(agents: [id])
            #expect(try await TestEnvironment.eventually { try await h.store.instances(agentID: id).first?.version == "1.0.0" })
            let v2 = agentYAML(id: id, trigger: "up.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "0.5"]
                """, config: "max_parallel_tasks: 3").replacingOccurrences(of: "version: 1.0.0", with: "version: 1.1.0")
            _ = try await h.publishAgent(v2)
            // The publish announces agent.published; workers pick it up at their next sync (1 s in tests).
            #expect(try await TestEnvironment.eventually { try await h.store.instances(agentID: id).first?.version == "1.1.0" })
            try await Task.sleep(for: .milliseconds(500))
            for _ in 0..<6 { try await h.bus.publish(Event(type: "up.\(id)", priority: .normal, source: "test")) }
            let runs = try await h.waitForRuns(id) { $0.filter { $0.state == .succeeded }.count == 6 }
            await worker.stop()
            #expect(runs.allSatisfy { $0.agentVersion == "1.1.0" })
            #expect(maxOverlap(runs) == 3, "the new limit of 3 applies: overlap \(maxOverlap(runs))")
            await h.cleanup(id)
        }
    }

    @Test("a retired agent's queue is drained by the workers that served it, which then stop its instances")
    func retiredAgentDrains() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("retire-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "old.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "0.3"]
                """, config: "max_parallel_tasks: 1"))
            let worker = try WorkerProcess(agents: [id])
            #expect(try await TestEnvironment.eventually { try await h.store.instances(agentID: id).first?.state == .idle })
            for _ in 0..<5 { try await h.bus.publish(Event(type: "old.\(id)", priority: .normal, source: "test")) }
            _ = try await h.registry.retire(agentID: id)
            let runs = try await h.waitForRuns(id) { $0.filter { $0.state == .succeeded }.count == 5 }
            #expect(runs.count == 5)
            let stopped = try await TestEnvironment.eventually { try await h.store.instances(agentID: id).first?.state == .stopped }
            let instances = try await h.store.instances(agentID: id)
            await worker.stop()
            #expect(stopped, "\(instances.map(\.state))")
            await h.cleanup(id)
        }
    }

    @Test("a worker serves only agents whose worker_labels it carries, and says which agents named by --agents it does not serve, and why")
    func workerLabels() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("label-")
            let missing = TestEnvironment.uniqueName("typo-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "lab.\(id)", handler: "builtin: noop",
                                                   extra: "worker_labels: {lab: lab-2}\n"))
            let elsewhere = try WorkerProcess(agents: [id, missing], extra: ["--label", "lab=lab-1"])
            let nextToIt = try WorkerProcess(agents: [id], extra: ["--label", "lab=lab-2", "--label", "rack=7"])
            #expect(try await TestEnvironment.eventually { try await h.store.instances(agentID: id).count == 1 })
            #expect(try await h.waitUntilUp(elsewhere, for: 2.5), "the lab-1 worker has synced a few times")
            let instances = try await h.store.instances(agentID: id)
            let workers = try await h.store.workers()
            let served = workers.first { $0.workerID == instances.first?.workerID }
            #expect(instances.count == 1, "only the lab-2 worker may serve it")
            #expect(served?.pid == Int(nextToIt.pid))
            #expect(served?.labels == ["lab": "lab-2", "rack": "7"])
            let warning = "--agents names agents this worker does not serve: "
            let said = elsewhere.output.split(separator: "\n").filter { $0.contains(warning) }
            #expect(said.count == 1, "said once, not at every sync: \(said)")
            #expect(said.first?.contains("\(id) (it runs only on workers labelled lab=lab-2)") == true, "\(said)")
            #expect(said.first?.contains("\(missing) (not published)") == true, "\(said)")
            #expect(!nextToIt.output.contains(warning), "the worker that serves every agent it names says nothing: \(nextToIt.output)")
            await elsewhere.stop()
            await nextToIt.stop()
            await h.cleanup(id)
        }
    }

    @Test("a worker survives rabbitmqctl close_all_connections mid-work: every event completes exactly once")
    func survivesBrokerConnectionLoss() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("reconnect-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "steady.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "0.1"]
                """, config: "max_parallel_tasks: 4"))
            let worker = try WorkerProcess(agents: [id])
            var events: [Event] = []
            for n in 0..<40 {
                let event = Event(type: "steady.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test")
                events.append(event)
                try await h.bus.publish(event)
            }
            _ = try await h.waitForRuns(id) { $0.filter { $0.state == .succeeded }.count >= 8 }
            // Every connection goes, the test's own included (its client reconnects too).
            try TestEnvironment.rabbitmqctl("close_all_connections", "-p", TestEnvironment.configuration.amqp.virtualHost, "test: worker reconnect")
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { runs in
                Set(runs.filter { $0.state == .succeeded }.map(\.eventID)).count == 40
            }
            #expect(try await TestEnvironment.waitUntilSettled("agentry.agent.\(id)", timeout: .seconds(30)))
            let final = try await h.runs(id)
            worker.signal(SIGTERM)
            let status = await worker.wait()
            let output = worker.output
            await worker.stop()
            let succeeded = final.filter { $0.state == .succeeded }
            #expect(Set(succeeded.map(\.eventID)) == Set(events.map(\.id.rawValue)), "\(runs.count) runs")
            #expect(succeeded.count == 40, "each event completes once: \(succeeded.count) successes")
            #expect(status == 0 && output.contains("worker stopped"), "the worker kept running and stopped cleanly: \(output.suffix(2000))")
            await h.cleanup(id)
        }
    }

    @Test("a worker whose PostgreSQL connections are terminated again and again mid-work completes every event exactly once and stops cleanly")
    func survivesDatabaseConnectionLoss() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("pgloss-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "pgloss.\(id)", handler: "builtin: noop", config: "max_parallel_tasks: 64"))
            let worker = try WorkerProcess(agents: [id])
            #expect(try await TestEnvironment.eventually {
                try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount == 1
            }, "\(worker.output)")
            let count = 4000
            let events = (0..<count).map { n in
                Event(type: "pgloss.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test")
            }
            let ids = Set(events.map(\.id.rawValue))
            async let published: Void = Self.publish(events, on: h.bus)
            #expect(try await TestEnvironment.eventually(timeout: .seconds(60)) { try await Self.succeededCount(h, id) >= 100 })
            // The worker names its connections (`agentry worker <host> pid <pid>`): end them every 100 ms while it
            // claims and records runs (as a database restart or a failover would), until two thirds have run.
            let pattern = "agentry worker % pid \(worker.pid)"
            var terminated = 0
            var rounds = 0
            while rounds < 300 {
                if try await Self.succeededCount(h, id) >= count * 2 / 3 { break }
                let rows = try await h.database.query("""
                    SELECT count(*)::int8 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                                WHERE application_name LIKE \(pattern)) t
                    """, logger: TestEnvironment.logger)
                for try await n in rows.decode(Int64.self) { terminated += Int(n) }
                rounds += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            try await published
            #expect(terminated >= 10, "the worker's connections were found and terminated: \(terminated) in \(rounds) rounds")
            let done = try await TestEnvironment.eventually(timeout: .seconds(90)) {
                Set(try await h.runs(id).filter { $0.state == .succeeded }.map(\.eventID)).count == count
            }
            let runs = try await h.runs(id)
            worker.signal(SIGTERM)
            let status = await worker.wait(timeout: .seconds(30))
            let output = worker.output
            await worker.stop()
            let succeeded = runs.filter { $0.state == .succeeded }
            let completed = Set(succeeded.map(\.eventID))
            // Exactly once: no event completes twice, whatever happened to the connections.
            #expect(succeeded.count == completed.count, "each event completes once: \(succeeded.count) successes of \(completed.count) events")
            #expect(completed.isSubset(of: ids))
            // Progress, and a clean stop. Until session 16 these failed about one run in four, for two reasons, both
            // fixed (see `Database.committed(on:_:)` and `PostgresConnection.queryAll(_:logger:)`): claims and outcomes
            // answered "done" at CommandComplete were rolled back when the connection died before the commit (runs left
            // running, holding their slots, their deliveries acked); and postgres-nio stopped the process when the
            // server closed a connection while rows waited for the reader.
            #expect(status == 0 && output.contains("worker stopped"), "the worker kept running and stopped cleanly: \(output.suffix(2000))")
            #expect(done, "every event completed: \(completed.count) of \(count); \(terminated) connections terminated in \(rounds) rounds")
            #expect(ids.subtracting(completed).isEmpty, "not completed: \(ids.subtracting(completed).count), e.g. \(ids.subtracting(completed).sorted().prefix(3))")
            #expect(runs.filter { $0.state == .running }.isEmpty, "no run is left running: \(runs.filter { $0.state == .running }.count)")
            await h.cleanup(id)
        }
    }

    static func publish(_ events: [Event], on bus: EventBus) async throws {
        for event in events { try await bus.publish(event) }
    }

    /// How many runs of the agent succeeded, by one count.
    static func succeededCount(_ h: WorkerHarness, _ agentID: String) async throws -> Int {
        var n = 0
        for try await value in try await h.database.query(
            "SELECT count(*)::int8 FROM task_runs WHERE agent_id = \(agentID) AND state = 'succeeded'",
            logger: TestEnvironment.logger).decode(Int64.self) { n = Int(value) }
        return n
    }

    @Test("a claim tried again after its answer was lost gets back its run and slot, or is told the run ended when its worker was declared lost in between; a run declared lost while it went on is recorded when it ends")
    func claimRetryIsIdempotent() async throws {
        try await withWorkerHarness { h in
            let agentID = TestEnvironment.uniqueName("reclaim-")
            let workerID = "\(agentID)-worker"
            try await h.store.register(WorkerRecord(workerID: workerID, host: "test-host", pid: 1, version: "test", labels: [:]))
            try await h.store.ensureSlots(agentID: agentID, count: 2)
            let run = TaskRun(runID: UUID(), agentID: agentID, agentVersion: "1.0.0", eventID: UUID().uuidString.lowercased(),
                              eventType: "test.reclaim", priority: .normal, workerID: workerID, instanceID: nil, attempt: 1,
                              state: .running, eventAt: Date())
            // Another run of `run`'s agent and worker, for an event of its own.
            let another = { () -> TaskRun in
                var other = run
                other.runID = UUID()
                other.eventID = UUID().uuidString.lowercased()
                return other
            }
            let first = try await h.store.claim(batch: [run], maxParallel: 2, workerExpiry: .seconds(30))
            let again = try await h.store.claim(batch: [run], maxParallel: 2, workerExpiry: .seconds(30))
            #expect(first == [.claimed(slot: 0)])
            #expect(again == first, "the retry finds its own run: \(again)")
            // A second run of the same event is still refused while the first runs.
            var other = run
            other.runID = UUID()
            let second = try await h.store.claim(batch: [other], maxParallel: 2, workerExpiry: .seconds(30))
            #expect(second == [.runningElsewhere(runID: run.runID, workerID: workerID)])
            var runs = try await h.runs(agentID)
            #expect(runs.map(\.runID) == [run.runID], "one run recorded")
            // Its worker declared lost while the run goes on (heartbeats that could not reach the database), as
            // expireWorkers does: the run is lost, its slot free. The worker still records how it ended.
            try await h.database.query("UPDATE task_runs SET state = 'lost', finished_at = now() WHERE run_id = \(run.runID)",
                                       logger: TestEnvironment.logger)
            try await h.database.query("UPDATE agent_slots SET run_id = NULL, worker_id = NULL WHERE agent_id = \(agentID)",
                                       logger: TestEnvironment.logger)
            #expect(try await h.store.finish(run.runID, agentID: agentID, slot: 0, .init(state: .succeeded)))
            runs = try await h.runs(agentID)
            #expect(runs.map(\.state) == [.succeeded], "the run that went on is recorded: \(runs.map(\.state))")

            // A claim written, its answer lost, and its worker declared lost (by a live worker's expiry check) before
            // the retry: the retry is told the run ended, and a claim under a new run id takes a slot.
            let late = another()
            #expect(try await h.store.claim(batch: [late], maxParallel: 2, workerExpiry: .seconds(30)) == [.claimed(slot: 0)])
            try await h.database.query("UPDATE workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = \(workerID)",
                                       logger: TestEnvironment.logger)
            let declared = try await h.store.expireWorkers(expiry: .seconds(30))
            #expect(declared.contains(workerID))
            #expect(try await h.store.heartbeat(workerID: workerID), "the worker's heartbeats reach the database again")
            let retried = try await h.store.claim(batch: [late], maxParallel: 2, workerExpiry: .seconds(30))
            #expect(retried == [.ended(state: .lost)], "the retry of a run declared lost: \(retried)")
            var fresh = late
            fresh.runID = UUID()
            #expect(try await h.store.claim(batch: [fresh], maxParallel: 2, workerExpiry: .seconds(30)) == [.claimed(slot: 0)])
            #expect(try await h.store.finish(fresh.runID, agentID: agentID, slot: 0, .init(state: .succeeded)))
            let lateRuns = try await h.store.runs(eventID: late.eventID)
            #expect(Set(lateRuns.map(\.state)) == [.lost, .succeeded], "\(lateRuns.map(\.state))")

            // A worker whose own heartbeat is stale (its heartbeats could not get through) never takes its own slots
            // as a dead worker's: they may hold runs whose claims' answers it lost. Another worker may.
            let held = another()
            #expect(try await h.store.claim(batch: [held], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)])
            try await h.database.query("UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = \(workerID)",
                                       logger: TestEnvironment.logger)
            let next = another()
            #expect(try await h.store.claim(batch: [next], maxParallel: 1, workerExpiry: .seconds(30)) == [.busy], "its own slot stays its run's")
            #expect(try await h.store.claim(batch: [held], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)],
                    "the retry of the held run still finds it")
            let otherWorker = "\(workerID)-other"
            try await h.store.register(WorkerRecord(workerID: otherWorker, host: "test-host", pid: 2, version: "test", labels: [:]))
            var elsewhereNext = next
            elsewhereNext.workerID = otherWorker
            #expect(try await h.store.claim(batch: [elsewhereNext], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)],
                    "a live worker takes the slot of a worker whose heartbeat expired")
            #expect(try await h.store.claim(batch: [held], maxParallel: 1, workerExpiry: .seconds(30)) == [.ended(state: .running)],
                    "the held run's retry is told its run lost its slot")
            try await h.database.query("DELETE FROM workers WHERE worker_id = \(otherWorker)", logger: TestEnvironment.logger)

            // An outcome written again (its first try committed, but the connection closed before that was confirmed)
            // still counts as recorded, so that its caller announces it; one the run was not recorded with does not.
            let done = another()
            try await h.database.query("DELETE FROM agent_slots WHERE agent_id = \(agentID)", logger: TestEnvironment.logger)
            try await h.store.ensureSlots(agentID: agentID, count: 1)
            #expect(try await h.store.claim(batch: [done], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)])
            #expect(try await h.store.finish(done.runID, agentID: agentID, slot: 0, .init(state: .succeeded)))
            #expect(try await h.store.finish(done.runID, agentID: agentID, slot: 0, .init(state: .succeeded)), "written again: recorded")
            #expect(try await h.store.finish(done.runID, agentID: agentID, slot: 0, .init(state: .cancelled)) == false,
                    "another outcome than the one recorded is refused")
            #expect(try await h.store.runs(eventID: done.eventID).map(\.state) == [.succeeded])
            let after = another()
            #expect(try await h.store.claim(batch: [after], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)],
                    "its slot was given back")

            try await h.database.query("DELETE FROM task_runs WHERE agent_id = \(agentID)", logger: TestEnvironment.logger)
            try await h.database.query("DELETE FROM agent_slots WHERE agent_id = \(agentID)", logger: TestEnvironment.logger)
            try await h.database.query("DELETE FROM workers WHERE worker_id = \(workerID)", logger: TestEnvironment.logger)
        }
    }

    @Test("workers stopped or lost longer ago than the retention are forgotten with their instances; the rest stay")
    func workerRetention() async throws {
        try await withWorkerHarness { h in
            let prefix = TestEnvironment.uniqueName("retention-")
            let agentID = "\(prefix)-agent"
            // old-stopped and old-lost ended two hours ago, recent-stopped a minute ago; running never ended.
            let ended = ["old-stopped": (status: "stopped", ago: 7200), "old-lost": (status: "lost", ago: 7200),
                         "recent-stopped": (status: "stopped", ago: 60), "running": (status: "running", ago: 0)]
            for (name, end) in ended {
                let workerID = "\(prefix)-\(name)"
                try await h.store.register(WorkerRecord(workerID: workerID, host: "test-host", pid: 1, version: "test", labels: [:]))
                _ = try await h.store.upsertInstance(workerID: workerID, agentID: agentID, version: "1.0.0", state: .idle)
                guard end.status != "running" else { continue }
                try await h.store.markWorker(workerID, status: end.status)
                try await h.database.client.query("""
                    UPDATE workers SET stopped_at = now() - make_interval(secs => \(end.ago)) WHERE worker_id = \(workerID)
                    """, logger: TestEnvironment.logger)
            }
            let pruned = try await h.store.pruneWorkers(olderThan: .seconds(3600))
            #expect(pruned >= 2)
            let workers = Set(try await h.store.workers().map(\.workerID).filter { $0.hasPrefix(prefix) })
            #expect(workers == ["\(prefix)-recent-stopped", "\(prefix)-running"])
            let instances = Set(try await h.store.instances(agentID: agentID).map(\.workerID))
            #expect(instances == workers)
            try await h.database.client.query("DELETE FROM workers WHERE worker_id LIKE \(prefix + "-%")", logger: TestEnvironment.logger)
        }
    }

    @Test("the run tables are analyzed once they changed by more than their size, so prepared plans follow their growth")
    func runTableStatistics() async throws {
        try await withWorkerHarness { h in
            let agentID = TestEnvironment.uniqueName("stats-")
            let client = h.database.client
            func changesSinceAnalyze() async throws -> Int64 {
                var changes: Int64 = -1
                for try await value in try await client.query(
                    "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'task_runs' AND schemaname = current_schema()",
                    logger: TestEnvironment.logger).decode(Int64.self) { changes = value }
                return changes
            }
            func insertRuns(_ count: Int) async throws {
                try await client.query("""
                    INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, state)
                    SELECT gen_random_uuid(), \(agentID), '1.0.0', gen_random_uuid(), 'stats.test', 3, 'succeeded'
                    FROM generate_series(1, \(count))
                    """, logger: TestEnvironment.logger)
            }
            try await insertRuns(30)
            // PostgreSQL publishes a session's counts within about a second.
            #expect(try await TestEnvironment.eventually { try await changesSinceAnalyze() >= 30 })
            // Changed by far less than a million times its size: not due.
            #expect(try await h.store.refreshStatistics(minimumChanges: 10, growth: 1_000_000).contains("task_runs") == false)
            #expect(try await changesSinceAnalyze() >= 30)
            // Due by count alone: analyzed, and its count of changes starts again.
            #expect(try await h.store.refreshStatistics(minimumChanges: 10, growth: 0).contains("task_runs"))
            #expect(try await changesSinceAnalyze() < 30)
            #expect(try await h.store.refreshStatistics(minimumChanges: 1_000_000_000, growth: 0) == [])
            try await client.query("DELETE FROM task_runs WHERE agent_id = \(agentID)", logger: TestEnvironment.logger)
        }
    }

    @Test("SIGTERM lets the running task finish, records it, and exits 0")
    func gracefulShutdown() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("term-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "term.\(id)", handler: """
                exec:
                  command: [/bin/sleep, "1.5"]
                """))
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "term.\(id)", priority: .normal, source: "test"))
            _ = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            worker.signal(SIGTERM)
            let status = await worker.wait()
            #expect(status == 0, "\(worker.output)")
            let runs = try await h.runs(id)
            #expect(runs.map(\.state) == [.succeeded])
            let workers = try await h.store.workers().filter { $0.pid == Int(worker.pid) }
            #expect(workers.first?.status == "stopped")
            #expect(try await h.connection.queueStatus("agentry.agent.\(id)").messageCount == 0)
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("SIGTERM stops an idle worker at once, not after its heartbeat's pause")
    func shutdownDuringHeartbeatPause() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("idle-term-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "idle.\(id)", handler: "builtin: noop"))
            // A minute between heartbeats: the loop sleeps through the whole test once it has sent its first one.
            let worker = try WorkerProcess(agents: [id], extra: ["--heartbeat-seconds", "60", "--worker-expiry-seconds", "180"])
            #expect(try await TestEnvironment.eventually {
                try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount == 1
            }, "\(worker.output)")
            let pid = Int(worker.pid)
            #expect(try await TestEnvironment.eventually { try await h.store.workers().contains { $0.pid == pid } }, "its first heartbeat is in")
            let signalled = ContinuousClock.now
            worker.signal(SIGTERM)
            // Waiting out the pause would take up to 60 s; wait() kills the worker after 30 and returns -1.
            let status = await worker.wait(timeout: .seconds(30))
            let took = ContinuousClock.now - signalled
            #expect(status == 0, "\(worker.output)")
            #expect(took < .seconds(30), "the worker took \(took) to exit after SIGTERM")
            let workers = try await h.store.workers().filter { $0.pid == Int(worker.pid) }
            #expect(workers.first?.status == "stopped")
            await worker.stop()
            await h.cleanup(id)
        }
    }
}
