import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import PostgresNIO
import Testing

/// Events from AMQP clients that are not Agentry: their `message_id`s are whatever the client chose.
@Suite("Events from any AMQP client", .serialized)
struct ForeignMessageTests {
    @Test("an event with message_id order-42 runs on every agent it reaches and shows in `agentry runs list --event`; events beside it run too")
    func orderFortyTwo() async throws {
        try await withWorkerHarness { h in
            let id = TestEnvironment.uniqueName("foreign-")
            let type = "order.\(id)"
            _ = try await h.publishAgent(agentYAML(id: id, trigger: type, handler: "builtin: noop"))
            _ = try await h.publishAgent(agentYAML(id: "\(id)-log", trigger: type, handler: "builtin: log"))
            let worker = try WorkerProcess(agents: [id, "\(id)-log"])
            let channel = try await h.connection.openChannel(confirms: true)
            let orderID = "order-42-\(id)"
            // As a common client publishes it: a plain JSON body, its own message_id, no envelope.
            try await channel.publish(
                AMQPMessage(
                    exchange: Topology.eventsExchange, routingKey: type, body: Array(#"{"order": 42}"#.utf8),
                    properties: AMQPProperties(
                        contentType: "application/json", deliveryMode: 2, priority: 2,
                        messageID: orderID)))
            // Beside it, in the same claim batches, events with Agentry's own ids and a number as id.
            let others = (0..<5).map { Event(type: type, payload: ["n": .int(Int64($0))]) }
            for event in others { try await h.bus.publish(event) }
            let number = Int64.random(in: 1_000_000_000...9_000_000_000)
            try await channel.publish(
                AMQPMessage(
                    exchange: Topology.eventsExchange, routingKey: type,
                    body: Array(#"{"id": \#(number), "type": "\#(type)", "payload": {}, "priority": 3}"#.utf8)))
            for agent in [id, "\(id)-log"] {
                let runs = try await h.waitForRuns(agent) { $0.filter { $0.state == .succeeded }.count == 7 }
                #expect(runs.filter { $0.state == .succeeded }.count == 7, "\(agent): \(runs.map { "\($0.eventID) \($0.state)" })")
                #expect(runs.contains { $0.eventID == orderID && $0.state == .succeeded })
                #expect(runs.contains { $0.eventID == String(number) && $0.state == .succeeded })
            }
            await worker.stop()
            let listed = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["runs", "list", "--event", orderID])
            #expect(listed.status == 0, "\(listed.output)")
            #expect(listed.output.contains(id) && listed.output.contains("succeeded"), "\(listed.output)")
            #expect(listed.output.split(separator: "\n").count == 3, "a header and one run per agent:\n\(listed.output)")
            let json = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["runs", "list", "--event", orderID, "--json"])
            #expect(json.output.contains("\"event_id\": \"\(orderID)\"") || json.output.contains("\"event_id\":\"\(orderID)\""), "\(json.output)")
            await h.cleanup(id)
            await h.cleanup("\(id)-log")
        }
    }

    @Test(
        "a statement refused for its data (text PostgreSQL cannot hold) is a data error, which the worker parks instead of retrying; others are not")
    func dataErrorsAreKnown() async throws {
        try await withWorkerHarness { h in
            let run = TaskRun(
                runID: UUID.version7(), agentID: TestEnvironment.uniqueName("data-"), agentVersion: "1.0.0",
                eventID: "nul-\(UUID().uuidString)", eventType: "bad\u{0}type", priority: .normal, workerID: "test-worker",
                instanceID: nil, attempt: 1, state: .running, eventAt: Date())
            try await h.store.ensureSlots(agentID: run.agentID, count: 1)
            do {
                _ = try await h.store.claim(batch: [run], maxParallel: 1, workerExpiry: .seconds(10))
                Issue.record("PostgreSQL took a NUL byte in text")
            } catch let error as StoreError {
                #expect(error.isDataError, "\(error) (SQLSTATE \(error.sqlState ?? "none"))")
                #expect(error.sqlState?.hasPrefix("22") == true)
            }
            // A refusal that has nothing to do with the event's content (here: no such table) is not one.
            do {
                _ = try await h.database.query("SELECT * FROM agentry_no_such_table", logger: TestEnvironment.logger)
                Issue.record("PostgreSQL read a table that does not exist")
            } catch {
                let refused = StoreError(.query, "read", cause: error)
                #expect(refused.sqlState == "42P01" && !refused.isDataError, "\(refused)")
            }
        }
    }
}
