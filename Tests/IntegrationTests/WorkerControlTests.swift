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

/// Pause, resume, cancel, new versions, retirement, labels, and what a worker keeps of its own records.
@Suite("Worker control", .serialized)
struct WorkerControlTests {
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
            #expect(
                try await TestEnvironment.eventually {
                    try TestEnvironment.queueCounts("agentry.agent.\(id)").map { $0.ready == 5 && $0.unacked == 0 } ?? false
                })
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

    @Test("cancelling a running run stops its process group and records it as cancelled; the event is not run again")
    func cancelRunningRun() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("cancel-")
            let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).pid").path
            defer { try? FileManager.default.removeItem(atPath: pidFile) }
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "cancel.\(id)",
                    handler: """
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
            if let first = try await iterator.next() {
                types.append(first.event.type)
                first.ack()
            }
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
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "oops.\(id)",
                    handler: """
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
            let v2 = agentYAML(
                id: id, trigger: "up.\(id)",
                handler: """
                    exec:
                      command: [/bin/sleep, "0.5"]
                    """, config: "max_parallel_tasks: 3"
            ).replacingOccurrences(of: "version: 1.0.0", with: "version: 1.1.0")
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
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "old.\(id)",
                    handler: """
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
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "lab.\(id)", handler: "builtin: noop",
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

    @Test("workers stopped or lost longer ago than the retention are forgotten with their instances; the rest stay")
    func workerRetention() async throws {
        try await withWorkerHarness { h in
            let prefix = TestEnvironment.uniqueName("retention-")
            let agentID = "\(prefix)-agent"
            // old-stopped and old-lost ended two hours ago, recent-stopped a minute ago; running never ended.
            let ended = [
                "old-stopped": (status: "stopped", ago: 7200), "old-lost": (status: "lost", ago: 7200),
                "recent-stopped": (status: "stopped", ago: 60), "running": (status: "running", ago: 0),
            ]
            for (name, end) in ended {
                let workerID = "\(prefix)-\(name)"
                try await h.store.register(WorkerRecord(workerID: workerID, host: "test-host", pid: 1, version: "test", labels: [:]))
                _ = try await h.store.upsertInstance(workerID: workerID, agentID: agentID, version: "1.0.0", state: .idle)
                guard end.status != "running" else { continue }
                try await h.store.markWorker(workerID, status: end.status)
                try await h.database.client.query(
                    """
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
                    logger: TestEnvironment.logger
                ).decode(Int64.self) { changes = value }
                return changes
            }
            func insertRuns(_ count: Int) async throws {
                try await client.query(
                    """
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
}
