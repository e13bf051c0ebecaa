import AMQP
import AgentryBus
import AgentryCore
import Foundation
import NIOHTTP1
import Testing

/// The dead-letter part of the admin API and CLI: counts by reason, one message whole, replay and delete by id, by
/// reason or all, with the token, and nothing lost on the way. Each test parks messages under reasons of its own,
/// so that what others left in the shared `agentry.dead` does not count.
@Suite("Dead letters in the admin API", .serialized)
struct DeadLetterAdminTests {
    /// Parks a message as a worker would: on `agentry.dead`, with the parking headers, addressed back to `exchange`
    /// and `routingKey`.
    static func park(
        _ connection: AMQPConnection, id: String, reason: String, exchange: String = Topology.eventsExchange, routingKey: String,
        body: String
    ) async throws {
        let channel = try await connection.openChannel()
        defer { channel.close() }
        try await channel.publish(
            AMQPMessage(
                exchange: Topology.deadExchange, routingKey: routingKey, body: Array(body.utf8),
                properties: AMQPProperties(
                    headers: [
                        DeadLetters.Header.reason: .string(reason), DeadLetters.Header.message: "parked by a test",
                        DeadLetters.Header.queue: .string(Topology.eventLogQueue),
                        DeadLetters.Header.originalExchange: .string(exchange), DeadLetters.Header.originalRoutingKey: .string(routingKey),
                        DeadLetters.Header.parkedAt: .string(Timestamp.format(Date())),
                    ], messageID: id)))
    }

    @Test("GET /api/dead counts by reason and filters; a message is read whole; replay and delete take ids, a reason or all, with the token")
    func countsReplayAndDelete() async throws {
        try await withAdminServer { a in
            let connection = a.worker.connection
            let tag = TestEnvironment.uniqueName("dl-")
            let (flaky, broken) = ("flaky-\(tag)", "broken-\(tag)")
            // An event type nothing is bound to: a replay reaches agentry.events (and the event log) all the same.
            let long = String(repeating: "x", count: 300)
            for n in 0..<3 {
                try await Self.park(
                    connection, id: "\(tag)-f\(n)", reason: flaky, routingKey: "test.\(tag)", body: #"{"type": "test.\#(tag)", "n": \#(n)}"#)
            }
            try await Self.park(connection, id: "\(tag)-b0", reason: broken, routingKey: "test.\(tag)", body: "not json \(long) end")
            try await Self.park(connection, id: "\(tag)-b1", reason: broken, routingKey: "test.\(tag)", body: "not json either")

            let listed = try await a.request(.GET, "/api/dead?limit=10000")
            #expect(listed.status == 200, "\(listed.text.prefix(300))")
            let reasons = listed.json?[path: "reasons"]?.arrayValue ?? []
            func count(_ reason: String) -> JSONValue? { reasons.first { $0[path: "reason"]?.stringValue == reason }?[path: "count"] }
            #expect(count(flaky) == 3 && count(broken) == 2, "\(reasons)")
            #expect((listed.json?[path: "total"]?.intValue ?? 0) >= 5)

            let filtered = try await a.request(.GET, "/api/dead?reason=\(broken)&limit=1")
            #expect(filtered.json?[path: "count"] == 1, "\(filtered.text.prefix(300))")
            let first = filtered.json?[path: "messages"]?.arrayValue?.first
            #expect(first?[path: "id"] == .string("\(tag)-b1") && first?[path: "reason"] == .string(broken), "the newest of that reason")
            #expect(first?[path: "preview"]?.stringValue?.count ?? 0 < 100, "a preview, not the body")
            #expect(first?[path: "replay_refusal"] == .null && first?[path: "truncated"] == false)

            let whole = try await a.request(.GET, "/api/dead/messages/\(tag)-b0")
            #expect(whole.status == 200, "\(whole.text.prefix(300))")
            #expect(whole.json?[path: "body"]?.stringValue?.hasSuffix("\(long) end") == true, "the whole body")
            #expect(whole.json?[path: "headers"]?[path: DeadLetters.Header.reason] == .string(broken))
            #expect(try await a.request(.GET, "/api/dead/messages/\(tag)-nothing").status == 404)

            // Changes need the token; a selection is exactly one of ids, reason or all.
            #expect(try await a.request(.POST, "/api/dead/delete", body: #"{"reason": "\#(broken)"}"#, authorized: false).status == 401)
            #expect(try await a.request(.POST, "/api/dead/replay", body: #"{"reason": "\#(flaky)"}"#, authorized: false).status == 401)
            #expect(try await a.request(.POST, "/api/dead/delete", body: #"{"reason": "x", "all": true}"#).status == 400)
            #expect(try await a.request(.POST, "/api/dead/replay", body: #"{"ids": []}"#).status == 400)

            // Replay all of a reason: each is published again (the event log records it) and leaves agentry.dead.
            let replayed = try await a.request(.POST, "/api/dead/replay", body: #"{"reason": "\#(flaky)"}"#)
            #expect(replayed.status == 200, "\(replayed.text)")
            #expect(replayed.json?[path: "replayed"] == 3 && replayed.json?[path: "refused"]?.arrayValue?.isEmpty == true)
            #expect(Set(replayed.json?[path: "ids"]?.arrayValue?.compactMap(\.stringValue) ?? []) == ["\(tag)-f0", "\(tag)-f1", "\(tag)-f2"])

            // Delete one by id, with the ids asked for that are not parked named; then the rest of a reason.
            let one = try await a.request(.POST, "/api/dead/delete", body: #"{"ids": ["\#(tag)-b1", "\#(tag)-gone"]}"#)
            #expect(one.json?[path: "deleted"] == 1 && one.json?[path: "missing"] == .array([.string("\(tag)-gone")]), "\(one.text)")
            let rest = try await a.request(.POST, "/api/dead/delete", body: #"{"reason": "\#(broken)"}"#)
            #expect(rest.json?[path: "deleted"] == 1 && rest.json?[path: "ids"] == .array([.string("\(tag)-b0")]), "\(rest.text)")

            let after = try await a.request(.GET, "/api/dead?limit=10000")
            #expect(
                after.json?[path: "reasons"]?.arrayValue?.contains { [flaky, broken].contains($0[path: "reason"]?.stringValue ?? "") } == false,
                "\(after.text.prefix(500))")
        }
    }

    @Test("a replay whose copy reaches no queue (the agent's queue is gone) leaves the message parked and says why")
    func replayToMissingQueueStaysParked() async throws {
        try await withAdminServer { a in
            let connection = a.worker.connection
            let tag = TestEnvironment.uniqueName("dlq-")
            let agentQueue = "\(Topology.agentQueuePrefix)\(tag)"
            try await Self.park(connection, id: "\(tag)-1", reason: "task-failed", exchange: "", routingKey: agentQueue, body: #"{"n": 1}"#)
            let answer = try await a.request(.POST, "/api/dead/replay", body: #"{"ids": ["\#(tag)-1"]}"#)
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.json?[path: "replayed"] == 0, "\(answer.text)")
            let refusal = answer.json?[path: "refused"]?.arrayValue?.first
            #expect(refusal?[path: "id"] == .string("\(tag)-1"))
            #expect(refusal?[path: "reason"]?.stringValue?.contains(agentQueue) == true, "\(answer.text)")
            #expect(try await DeadLetters.list(on: connection, limit: 100_000).contains { $0.id == "\(tag)-1" }, "still parked")

            // Once the queue is there, the same replay delivers it.
            try await connection.declare(QueueDeclaration(name: agentQueue, durable: false, exclusive: true, autoDelete: false))
            let again = try await a.request(.POST, "/api/dead/replay", body: #"{"ids": ["\#(tag)-1"]}"#)
            #expect(again.json?[path: "replayed"] == 1, "\(again.text)")
            #expect(try await connection.queueStatus(agentQueue).messageCount == 1)
            #expect(try await DeadLetters.list(on: connection, limit: 100_000).contains { $0.id == "\(tag)-1" } == false)
            _ = try? await connection.deleteQueue(agentQueue)
        }
    }

    @Test("agentry dead counts, list --reason, show, replay --reason and delete print what they did")
    func cli() async throws {
        let tag = TestEnvironment.uniqueName("dlc-")
        let reason = "cli-\(tag)"
        let connection = try await TestEnvironment.connect()
        defer { Task { await connection.close() } }
        for n in 0..<2 {
            try await Self.park(connection, id: "\(tag)-\(n)", reason: reason, routingKey: "test.\(tag)", body: #"{"n": \#(n), "tag": "\#(tag)"}"#)
        }
        let counts = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "counts"])
        #expect(counts.status == 0 && counts.output.contains(reason), "\(counts.output)")
        let line = counts.output.split(separator: "\n").first { $0.contains(reason) } ?? ""
        #expect(line.split(separator: " ").last == "2", "\(line)")
        let listed = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "list", "--reason", reason])
        #expect(listed.output.contains("\(tag)-0") && listed.output.contains("\(tag)-1"), "\(listed.output)")
        let shown = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "show", "\(tag)-1"])
        #expect(shown.status == 0 && shown.output.contains(#""tag": "\#(tag)""#), "\(shown.output)")
        let deleted = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "delete", "\(tag)-0"])
        #expect(deleted.status == 0 && deleted.output.contains("deleted 1"), "\(deleted.output)")
        let replayed = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "replay", "--reason", reason])
        #expect(replayed.status == 0 && replayed.output.contains("replayed 1, left parked 0"), "\(replayed.output)")
        let neither = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "delete"])
        #expect(neither.status != 0 && neither.output.contains("--reason"), "\(neither.output)")
        let missing = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["dead", "delete", "\(tag)-0"])
        #expect(missing.status != 0 && missing.output.contains("not found"), "\(missing.output)")
    }
}
