import AgentryCore
import AgentryStore
import Foundation
import PostgresNIO
import Testing

@testable import AgentryRuntime

/// After an outage of its own a worker does not declare others lost until they had a heartbeat's chance.
@Suite("Heartbeat health", .serialized)
struct HeartbeatHealthTests {
    @Test("a worker may sweep only after a whole expiry of its own heartbeats without a failure")
    func sweepWaitsForAWholeExpiry() {
        let start = ContinuousClock.now
        let expiry = Duration.seconds(3)
        var health = HeartbeatHealth()
        #expect(!health.maySweep(at: start, expiry: expiry), "nothing succeeded yet")
        health.succeeded(at: start)
        #expect(!health.maySweep(at: start + .seconds(2), expiry: expiry))
        #expect(health.maySweep(at: start + .seconds(3), expiry: expiry))
        // An outage of its own: the others get a whole expiry again from the first heartbeat after it.
        health.failed()
        #expect(!health.maySweep(at: start + .seconds(10), expiry: expiry))
        health.succeeded(at: start + .seconds(10))
        health.succeeded(at: start + .seconds(11))
        #expect(!health.maySweep(at: start + .seconds(12), expiry: expiry))
        #expect(health.maySweep(at: start + .seconds(13), expiry: expiry))
    }

    @Test("a starting worker does not declare a silent worker lost before its own heartbeats went through for an expiry; then it does")
    func startingWorkerWaits() async throws {
        try await withWorkerHarness { h in
            let silent = TestEnvironment.uniqueName("silent-worker-")
            try await h.store.register(WorkerRecord(workerID: silent, host: "elsewhere", pid: 1, version: "test", labels: [:]))
            // Its heartbeat is long expired, as it would look to a worker that could not reach PostgreSQL for a while.
            _ = try await h.database.write(
                "UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = \(silent)",
                logger: TestEnvironment.logger)
            let id = TestEnvironment.uniqueName("sweeper-")
            _ = try await h.publishAgent(agentYAML(id: id, trigger: "sweep.\(id)", handler: "builtin: noop"))
            let worker = try WorkerProcess(agents: [id])  // heartbeat 0.5 s, expiry 3 s
            _ = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                try await h.store.workers().contains {
                    $0.host != "elsewhere" && $0.status == "running" && $0.pid == Int(worker.process.processIdentifier)
                }
            }
            let early = try await h.store.workers().first { $0.workerID == silent }?.status
            let lost = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                try await h.store.workers().first { $0.workerID == silent }?.status == "lost"
            }
            await worker.stop()
            #expect(early == "running", "declared lost as soon as the worker started: \(early ?? "gone")")
            #expect(lost, "declared lost once the worker's own heartbeats went through for an expiry")
            await h.cleanup(id)
        }
    }
}
