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

/// Workers killed, handed over, cut off from the broker or the database, and shut down: every event completes once.
@Suite("Worker recovery", .serialized)
struct WorkerRecoveryTests {
    @Test("a worker killed with SIGKILL mid-task: the task completes exactly once on the other worker")
    func sigkillRecovery() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("kill-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "long.\(id)",
                    handler: """
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
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "long.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sh, -c, 'sleep 3; echo "{\\"attempt\\": $AGENTRY_ATTEMPT}"']
                        """, config: "max_parallel_tasks: 1"))
            let first = try WorkerProcess(agents: [id], extra: ["--ack-deadline-seconds", "1"])
            try await h.bus.publish(Event(type: "long.\(id)", priority: .normal, source: "test"))
            _ = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            // Past the deadline the delivery is acked while the task still runs: nothing unacked, nothing ready.
            let acked = try await TestEnvironment.eventually(timeout: .seconds(4)) {
                let listing = try TestEnvironment.run(
                    "rabbitmqctl",
                    ["list_queues", "-p", TestEnvironment.configuration.amqp.virtualHost, "-q", "--no-table-headers", "name", "messages"])
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

    @Test("a worker survives rabbitmqctl close_all_connections mid-work: every event completes exactly once")
    func survivesBrokerConnectionLoss() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("reconnect-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "steady.\(id)",
                    handler: """
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
            #expect(
                try await TestEnvironment.eventually {
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
                let rows = try await h.database.query(
                    """
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
            #expect(
                ids.subtracting(completed).isEmpty,
                "not completed: \(ids.subtracting(completed).count), e.g. \(ids.subtracting(completed).sorted().prefix(3))")
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
            logger: TestEnvironment.logger
        ).decode(Int64.self) { n = Int(value) }
        return n
    }

    @Test(
        "a claim tried again after its answer was lost gets back its run and slot, or is told the run ended when its worker was declared lost in between; a run declared lost while it went on is recorded when it ends"
    )
    func claimRetryIsIdempotent() async throws {
        try await withWorkerHarness { h in
            let agentID = TestEnvironment.uniqueName("reclaim-")
            let workerID = "\(agentID)-worker"
            try await h.store.register(WorkerRecord(workerID: workerID, host: "test-host", pid: 1, version: "test", labels: [:]))
            try await h.store.ensureSlots(agentID: agentID, count: 2)
            let run = TaskRun(
                runID: UUID(), agentID: agentID, agentVersion: "1.0.0", eventID: UUID().uuidString.lowercased(),
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
            try await h.database.query(
                "UPDATE task_runs SET state = 'lost', finished_at = now() WHERE run_id = \(run.runID)",
                logger: TestEnvironment.logger)
            try await h.database.query(
                "UPDATE agent_slots SET run_id = NULL, worker_id = NULL WHERE agent_id = \(agentID)",
                logger: TestEnvironment.logger)
            #expect(try await h.store.finish(run.runID, agentID: agentID, slot: 0, .init(state: .succeeded)))
            runs = try await h.runs(agentID)
            #expect(runs.map(\.state) == [.succeeded], "the run that went on is recorded: \(runs.map(\.state))")

            // A claim written, its answer lost, and its worker declared lost (by a live worker's expiry check) before
            // the retry: the retry is told the run ended, and a claim under a new run id takes a slot.
            let late = another()
            #expect(try await h.store.claim(batch: [late], maxParallel: 2, workerExpiry: .seconds(30)) == [.claimed(slot: 0)])
            try await h.database.query(
                "UPDATE workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = \(workerID)",
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
            try await h.database.query(
                "UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = \(workerID)",
                logger: TestEnvironment.logger)
            let next = another()
            #expect(try await h.store.claim(batch: [next], maxParallel: 1, workerExpiry: .seconds(30)) == [.busy], "its own slot stays its run's")
            #expect(
                try await h.store.claim(batch: [held], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)],
                "the retry of the held run still finds it")
            let otherWorker = "\(workerID)-other"
            try await h.store.register(WorkerRecord(workerID: otherWorker, host: "test-host", pid: 2, version: "test", labels: [:]))
            var elsewhereNext = next
            elsewhereNext.workerID = otherWorker
            #expect(
                try await h.store.claim(batch: [elsewhereNext], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)],
                "a live worker takes the slot of a worker whose heartbeat expired")
            #expect(
                try await h.store.claim(batch: [held], maxParallel: 1, workerExpiry: .seconds(30)) == [.ended(state: .running)],
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
            #expect(
                try await h.store.finish(done.runID, agentID: agentID, slot: 0, .init(state: .cancelled)) == false,
                "another outcome than the one recorded is refused")
            #expect(try await h.store.runs(eventID: done.eventID).map(\.state) == [.succeeded])
            let after = another()
            #expect(
                try await h.store.claim(batch: [after], maxParallel: 1, workerExpiry: .seconds(30)) == [.claimed(slot: 0)],
                "its slot was given back")

            try await h.database.query("DELETE FROM task_runs WHERE agent_id = \(agentID)", logger: TestEnvironment.logger)
            try await h.database.query("DELETE FROM agent_slots WHERE agent_id = \(agentID)", logger: TestEnvironment.logger)
            try await h.database.query("DELETE FROM workers WHERE worker_id = \(workerID)", logger: TestEnvironment.logger)
        }
    }

    @Test("SIGTERM lets the running task finish, records it, and exits 0")
    func gracefulShutdown() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("term-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "term.\(id)",
                    handler: """
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
            #expect(
                try await TestEnvironment.eventually {
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
