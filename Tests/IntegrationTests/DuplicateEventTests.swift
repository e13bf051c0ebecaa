import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Testing

/// The chaos suite's duplicate publishes, reduced to two workers: one event published twice, back to back, reaches
/// both workers at the same moment; it must run once.
@Suite("Duplicate publishes", .serialized)
struct DuplicateEventTests {
    @Test("an event published twice back to back, taken by two workers at once, runs once: one run, never two at a time")
    func duplicatesRunOnce() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("dup-")
            _ = try await h.publishAgent(
                agentYAML(
                    id: id, trigger: "dup.\(id)", handler: "exec: {command: [/bin/sh, -c, 'sleep 0.4; printf {}']}",
                    config: "max_parallel_tasks: 16\ntask_events: false"))
            let workers = [try WorkerProcess(agents: [id]), try WorkerProcess(agents: [id])]
            #expect(
                try await TestEnvironment.eventually(timeout: .seconds(30)) {
                    try await h.connection.queueStatus("agentry.agent.\(id)").consumerCount == 2
                }, "both workers consume the agent's queue")
            let events = (0..<12).map { n in Event(type: "dup.\(id)", payload: ["n": .int(Int64(n))], priority: .normal, source: "test") }
            for event in events {
                // The same event (same id) twice in a row: adjacent in the queue, so the two consumers get one each.
                try await h.bus.publish(event)
                try await h.bus.publish(event)
            }
            let runs = try await h.waitForRuns(id, timeout: .seconds(60)) { runs in
                Set(runs.filter { $0.state == .succeeded }.map(\.eventID)).count == events.count
                    && runs.allSatisfy { $0.state != .running }
            }
            for worker in workers { await worker.stop() }
            let byEvent = Dictionary(grouping: runs, by: \.eventID)
            for event in events {
                let mine = byEvent[event.id.rawValue] ?? []
                // Before claims of one event excluded each other, the two deliveries were both claimed now and then:
                // two runs, the handler running twice at once.
                #expect(mine.count == 1 && mine.first?.state == .succeeded, "\(event.id): \(mine.map { "\($0.state) \($0.message ?? "")" })")
            }
        }
    }
}
