import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A worker declared lost stops its runs; a broker alarm that blocks publishing does not stop acks; a delivery is
/// acked only once its outcome is committed.
@Suite("Worker safety", .serialized)
struct WorkerSafetyTests {
    @Test("a worker that finds itself declared lost stops its runs at once, says so, and its event runs again")
    func declaredLostStopsRuns() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("lost-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "long.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "60"]
                        """, config: "max_parallel_tasks: 1"))
            let worker = try WorkerProcess(agents: [id])
            try await h.bus.publish(Event(type: "long.\(id)", priority: .normal, source: "test"))
            let running = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
            let first = try #require(running.first { $0.state == .running })
            let workerID = try #require(first.workerID)
            // As another worker does when this one's heartbeats expired (here while they go on).
            try await h.database.query("UPDATE workers SET status = 'lost' WHERE worker_id = \(workerID)", logger: TestEnvironment.logger)
            try await h.database.query(
                "UPDATE task_runs SET state = 'lost', finished_at = now() WHERE run_id = \(first.runID)", logger: TestEnvironment.logger)
            let runs = try await h.waitForRuns(id, timeout: .seconds(15)) { runs in
                runs.contains { $0.runID == first.runID && $0.state == .cancelled }
                    && runs.contains { $0.runID != first.runID && $0.state == .running }
            }
            let stopped = try #require(runs.first { $0.runID == first.runID })
            #expect(stopped.state == .cancelled, "\(runs.map(\.state))")
            #expect(stopped.message?.contains("declared lost") == true, "\(stopped.message ?? "")")
            #expect(runs.contains { $0.runID != first.runID && $0.state == .running }, "the event runs again: \(runs.map(\.state))")
            #expect(worker.output.contains("declared lost by another worker"), "the worker says so")
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("a control message carries its sender (body, AMQP user-id and app-id) and every worker logs who sent it")
    func controlSenderLogged() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("control-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "control.\(id)", handler: "builtin: noop"))
            let worker = try WorkerProcess(agents: [id])
            // Once the worker serves the agent, its control queue is bound.
            _ = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                try await h.store.instances(agentID: id).contains { $0.state == .idle }
            }
            let sender = "the control test \(id)"
            try await WorkerCommand.sync.send(on: h.connection, sender: sender)
            let logged = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                worker.output.split(separator: "\n").contains { $0.contains("control message received") && $0.contains(sender) }
            }
            let line = worker.output.split(separator: "\n").first { $0.contains("control message received") } ?? ""
            await worker.stop()
            #expect(logged, "the worker logs the control message with its sender: \(line)")
            #expect(line.contains("amqp.user_id=\(TestEnvironment.configuration.amqp.user)") && line.contains("amqp.app_id=agentry"), "\(line)")
            await h.cleanup(id)
        }
    }

    @Test("a broker memory alarm blocks publishing but not acks: in-flight runs finish and are acked while it lasts")
    func alarmDoesNotStopAcks() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("alarm-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "work.\(id)",
                    handler: """
                        exec:
                          command: [/bin/sleep, "{{payload.seconds}}"]
                        """, config: "max_parallel_tasks: 2"))
            let worker = try WorkerProcess(agents: [id])
            // Two runs that end at different times while the alarm is on, so that the first one's announcement is
            // published (which blocks a connection that publishes) before the second one is acked.
            try await h.bus.publish(Event(type: "work.\(id)", payload: ["seconds": "3"], priority: .normal, source: "test"))
            try await h.bus.publish(Event(type: "work.\(id)", payload: ["seconds": "6"], priority: .normal, source: "test"))
            _ = try await h.waitForRuns(id) { $0.filter { $0.state == .running }.count == 2 }
            let (acked, alarmSeen) = try await TestEnvironment.withMemoryAlarm {
                try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    let succeeded = try await h.runs(id).filter { $0.state == .succeeded }.count
                    let counts = try TestEnvironment.queueCounts("agentry.agent.\(id)")
                    return succeeded == 2 && counts?.ready == 0 && counts?.unacked == 0
                }
            }
            let states = try await h.runs(id).map(\.state)
            let counts = try TestEnvironment.queueCounts("agentry.agent.\(id)")
            #expect(acked, "both runs succeeded and were acked during the alarm: \(states), queue \(String(describing: counts))")
            #expect(alarmSeen, "the alarm was on meanwhile")
            _ = try await TestEnvironment.eventually(timeout: .seconds(30)) { worker.output.contains("unblocked") }
            #expect(worker.output.contains("RabbitMQ blocked this connection"), "the worker logs the alarm")
            await worker.stop()
            await h.cleanup(id)
        }
    }

    @Test("a run whose outcome cannot be recorded is not acked: on shutdown its event goes back to the queue")
    func ackOnlyAfterCommit() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("norecord-")
            let function = "agentry_test_refuse_\(id.replacingOccurrences(of: "-", with: "_"))"
            _ = try await h.publishAgent(
                agentYAML(id: id, trigger: "work.\(id)", handler: "builtin: noop", config: "max_parallel_tasks: 1\ntask_events: false"))
            // Every outcome of this agent's runs is refused by the database.
            try await h.database.query(
                PostgresQuery(
                    unsafeSQL: """
                        CREATE FUNCTION \(function)() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN RAISE EXCEPTION 'test: outcomes of %s are refused', OLD.agent_id; END $$
                        """), logger: TestEnvironment.logger)
            try await h.database.query(
                PostgresQuery(
                    unsafeSQL: """
                        CREATE TRIGGER \(function) BEFORE UPDATE ON task_runs FOR EACH ROW
                        WHEN (OLD.agent_id = '\(id)' AND NEW.state <> 'running') EXECUTE FUNCTION \(function)()
                        """), logger: TestEnvironment.logger)
            let dropTrigger = { @Sendable in
                _ = try? await h.database.query(
                    PostgresQuery(unsafeSQL: "DROP TRIGGER IF EXISTS \(function) ON task_runs"), logger: TestEnvironment.logger)
                _ = try? await h.database.query(PostgresQuery(unsafeSQL: "DROP FUNCTION IF EXISTS \(function)()"), logger: TestEnvironment.logger)
            }
            do {
                let worker = try WorkerProcess(agents: [id], extra: ["--shutdown-grace", "1"])
                try await h.bus.publish(Event(type: "work.\(id)", priority: .normal, source: "test"))
                _ = try await h.waitForRuns(id) { $0.contains { $0.state == .running } }
                // The handler is done at once; its outcome cannot be written.
                _ = try await TestEnvironment.eventually(timeout: .seconds(10)) { worker.output.contains("cannot record the run's outcome") }
                worker.signal(SIGTERM)
                let status = await worker.wait(timeout: .seconds(30))
                #expect(status == 0, "the worker stops although it could not record the outcome: \(worker.output.suffix(2000))")
                let counts = try TestEnvironment.queueCounts("agentry.agent.\(id)")
                #expect(counts?.ready == 1, "the event is back in the queue, not acked: \(String(describing: counts))")
                let recorded = try await h.runs(id).map(\.state)
                #expect(recorded.allSatisfy { $0 == .running }, "nothing recorded: \(recorded)")
                await worker.stop()
            } catch {
                await dropTrigger()
                throw error
            }
            await dropTrigger()
            await h.cleanup(id)
        }
    }
}
