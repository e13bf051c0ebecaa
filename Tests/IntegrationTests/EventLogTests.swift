import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import Testing

@Suite("Event log")
struct EventLogTests {
    @Test("an event is logged once, even when its message arrives twice")
    func oneRowPerEvent() async throws {
        try await withEventLog { bus, store, _ in
            let event = Event(
                type: "test.log.once", payload: ["device_id": "tv-1", "n": 3], priority: .high, source: "tests",
                correlationID: "corr-\(UUID().uuidString)")
            try await bus.publish(event)
            try await bus.publish(event)  // a redelivery of the same event id
            #expect(try await TestEnvironment.eventually { try await store.entry(event.id) != nil })
            #expect(try await TestEnvironment.waitUntilSettled(Topology.eventLogQueue), "the event log has taken and written everything")
            #expect(try await store.count(eventID: event.id) == 1)
            let entry = try #require(try await store.entry(event.id))
            #expect(entry.event.type == event.type)
            #expect(entry.event.payload == event.payload)
            #expect(entry.event.priority == .high)
            #expect(entry.event.source == "tests")
            #expect(entry.event.correlationID == event.correlationID)
            #expect(abs(entry.event.timestamp.timeIntervalSince(event.timestamp)) < 0.001)
        }
    }

    @Test("an event no agent listens to is marked unhandled and event.unhandled is published")
    func unhandledAnnounced() async throws {
        try await withEventLog { bus, store, _ in
            let announcements = try await bus.subscribe(to: "event.unhandled")
            let event = Event(type: "test.unheard.\(TestEnvironment.uniqueName())", payload: [:], priority: .critical)
            try await bus.publish(event)
            var announcement: Event?
            for try await received in announcements {
                received.ack()
                if received.event.payload["event_id"] == .string(event.id.rawValue) {
                    announcement = received.event
                    break
                }
            }
            let unhandled = try #require(announcement)
            #expect(unhandled.causationID == event.id.rawValue)
            #expect(unhandled.payload["event_type"] == .string(event.type))
            #expect(unhandled.priority == .critical)
            #expect(
                try await TestEnvironment.eventually {
                    let entry = try await store.entry(event.id)
                    return entry?.unhandled == true && entry?.unhandledAnnounced == true
                })
            // The announcement itself is logged, and never reported as unhandled.
            #expect(try await TestEnvironment.eventually { try await store.entry(unhandled.id) != nil })
            #expect(try await TestEnvironment.waitUntilSettled(Topology.eventLogQueue), "the event log has taken and written everything")
            #expect(try await store.entry(unhandled.id)?.unhandled == false)
        }
    }

    @Test("an event an agent listens to is not unhandled; Agentry's own events are never reported")
    func handledAndSystemEvents() async throws {
        try await withEventLog { bus, store, connection in
            let agent = TestEnvironment.uniqueName("listener-")
            let type = "test.heard.\(agent)"
            try await bus.declareAgentQueue(agent, patterns: [type])
            defer { Task { try? await connection.deleteQueue(Topology.agentQueue(agent).name) } }
            let handled = Event(type: type, payload: [:])
            let system = Event(type: "agent.test.\(agent)", payload: [:])
            try await bus.publish(handled)
            try await bus.publish(system)
            #expect(
                try await TestEnvironment.eventually {
                    let a = try await store.entry(handled.id)
                    let b = try await store.entry(system.id)
                    return a != nil && b != nil
                })
            #expect(try await TestEnvironment.waitUntilSettled(Topology.eventLogQueue), "the event log has taken and written everything")
            #expect(try await store.entry(handled.id)?.unhandled == false)
            #expect(try await store.entry(system.id)?.unhandled == false)
            #expect(try await connection.queueStatus(Topology.agentQueue(agent).name).messageCount == 1)
        }
    }

    @Test("a plain publish from another AMQP client is logged with its type and priority")
    func plainPublish() async throws {
        try await withEventLog { _, store, connection in
            // amqp-publish (Debian amqp-tools) sets no priority: the event counts as LOW.
            let type = "test.plain.\(TestEnvironment.uniqueName())"
            let messageID = UUID().uuidString
            let result = try TestEnvironment.run(
                "amqp-publish",
                [
                    "--url",
                    "amqp://\(TestEnvironment.configuration.amqp.user):\(TestEnvironment.configuration.amqp.password)@\(TestEnvironment.configuration.amqp.host):\(TestEnvironment.configuration.amqp.port)/\(TestEnvironment.configuration.amqp.virtualHostPathSegment)",
                    "-e", "agentry.events", "-r", type, "-p", "-C", "application/json", "-b", #"{"device_id": "tv-9", "level": 2}"#,
                    "-H", "x-test: 1",
                ])
            #expect(result.status == 0, "amqp-publish said: \(result.output)")
            let logged = try await TestEnvironment.eventually {
                try await store.recent(limit: 5, type: type).count == 1
            }
            #expect(logged)
            let entry = try #require(try await store.recent(limit: 5, type: type).first)
            #expect(entry.event.priority == .low)
            #expect(entry.event.payload == ["device_id": "tv-9", "level": 2])

            // Another client that sets message_id and an AMQP priority (3 = HIGH), without the envelope.
            let channel = try await connection.openChannel()
            let highType = "test.plain.high.\(TestEnvironment.uniqueName())"
            try await channel.publish(
                AMQPMessage(
                    exchange: Topology.eventsExchange, routingKey: highType, body: Array(#"{"x": 1}"#.utf8),
                    properties: AMQPProperties(priority: 3, messageID: messageID)))
            #expect(try await TestEnvironment.eventually { try await store.entry(EventID(messageID)!) != nil })
            let high = try #require(try await store.entry(EventID(messageID)!))
            #expect(high.event.type == highType)
            #expect(high.event.priority == .high)
            #expect(high.event.payload == ["x": 1])
        }
    }

    @Test("each kind of bad message is parked in agentry.dead with its reason, and good messages keep flowing")
    func badMessagesParked() async throws {
        try await withEventLog { bus, store, connection in
            let channel = try await connection.openChannel()
            let tag = TestEnvironment.uniqueName("bad-")
            let cases: [(routingKey: String, body: [UInt8], priority: UInt8?, reason: String)] = [
                ("test.bad.\(tag).notjson", Array("this is not json".utf8), nil, "not-json"),
                ("test.bad.\(tag).array", Array("[1, 2, 3]".utf8), nil, "not-an-object"),
                ("test.bad.\(tag).amqppriority", Array(#"{"a": 1}"#.utf8), 9, "unknown-priority"),
                (
                    "test.bad.\(tag).envelopepriority",
                    Array(#"{"id": "x-\#(tag)", "type": "test.bad.x", "payload": {}, "priority": 7, "timestamp": "2026-01-01T00:00:00Z"}"#.utf8), nil,
                    "unknown-priority"
                ),
                (
                    "test.bad.\(tag).large",
                    Array(#"{"blob": ""#.utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: EventWireFormat.defaultMaxBodySize)
                        + Array(#""}"#.utf8), nil, "too-large"
                ),
                // A byte sequence that is not UTF-8 is parked, not logged with replacement characters.
                ("test.bad.\(tag).notutf8", Array(#"{"name": ""#.utf8) + [0xFF, 0xFE, 0x41] + Array(#""}"#.utf8), nil, "not-utf8"),
                // jsonb cannot hold \u0000: parked with the reason instead of failing the log's batch.
                ("test.bad.\(tag).nul", Array(#"{"text": "a\u0000b"}"#.utf8), nil, "invalid-field"),
                // A message_id PostgreSQL's text cannot hold.
                (
                    "test.bad.\(tag).epoch",
                    Array(#"{"id": "e-\#(tag)", "type": "test.bad.y", "payload": {}, "priority": 1, "timestamp": 99999999999999}"#.utf8), nil,
                    "invalid-field"
                ),
            ]
            for c in cases {
                try await channel.publish(
                    AMQPMessage(
                        exchange: Topology.eventsExchange, routingKey: c.routingKey, body: c.body,
                        properties: AMQPProperties(deliveryMode: 2, priority: c.priority)))
            }
            let good = Event(type: "test.good.\(tag)", payload: ["ok": true])
            try await bus.publish(good)
            #expect(try await TestEnvironment.eventually { try await store.entry(good.id) != nil }, "good events keep flowing")

            var reasons: [String: String] = [:]
            // A prefetch large enough for everything parked: messages of other tests are left alone (they go back to
            // the queue, in place, when the consumer closes) rather than requeued, which would cycle them forever.
            let dead = try await connection.consume(queue: Topology.deadQueue, prefetch: 1000)
            var iterator = dead.makeAsyncIterator()
            while reasons.count < cases.count, let delivery = try await iterator.next() {
                let key = delivery.headers(DeadLetters.Header.originalRoutingKey) ?? delivery.routingKey
                if key.contains(tag) {
                    reasons[key] = delivery.headers(DeadLetters.Header.reason)
                    #expect(delivery.headers(DeadLetters.Header.queue) == Topology.eventLogQueue)
                    #expect(delivery.headers(DeadLetters.Header.message)?.isEmpty == false)
                    delivery.ack()
                }
            }
            await dead.close()
            for c in cases {
                #expect(reasons[c.routingKey] == c.reason, "\(c.routingKey) parked with reason \(reasons[c.routingKey] ?? "none")")
            }
        }
    }
}

extension AMQPDelivery {
    func headers(_ name: String) -> String? {
        properties.headers?[name]?.stringValue
    }
}

@Suite("Dead letters")
struct DeadLetterTests {
    @Test("parked messages are listed with their reason, and a replayed event reaches the log")
    func listAndReplay() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        try await withEventLog(vhost: vhost) { _, store, connection in
            let channel = try await connection.openChannel()
            try await channel.publish(
                AMQPMessage(
                    exchange: Topology.eventsExchange, routingKey: "test.dead.bad", body: Array("nope".utf8),
                    properties: AMQPProperties(messageID: "bad-1")))
            // A good event parked by hand (as when the database refused it), to be replayed.
            let good = Event(type: "test.dead.good", payload: ["n": 1])
            let parkChannel = try await connection.openChannel(confirms: true)
            let dead = DeadLetters(channel: parkChannel)
            let message = EventBus.message(for: good)
            try await parkChannel.publish(
                AMQPMessage(
                    exchange: Topology.deadExchange, routingKey: message.routingKey, body: message.body,
                    properties: {
                        var p = message.properties
                        p.headers = [
                            DeadLetters.Header.reason: "refused-by-database",
                            DeadLetters.Header.originalExchange: .string(Topology.eventsExchange),
                            DeadLetters.Header.originalRoutingKey: .string(good.type),
                        ]
                        return p
                    }()))
            var listed: [ParkedMessage] = []
            #expect(
                try await TestEnvironment.eventually {
                    listed = try await DeadLetters.list(on: connection)
                    return listed.count == 2
                })
            let bad = try #require(listed.first { $0.id == "bad-1" })
            #expect(bad.reason == "not-json")
            #expect(bad.originalRoutingKey == "test.dead.bad")
            #expect(bad.queue == Topology.eventLogQueue)
            #expect(listed.contains { $0.id == good.id.rawValue && $0.reason == "refused-by-database" })
            // Listing leaves them parked.
            #expect(try await connection.queueStatus(Topology.deadQueue).messageCount == 2)

            let replayed = try await dead.replay(on: connection, ids: [good.id.rawValue])
            #expect(replayed.map(\.id) == [good.id.rawValue])
            #expect(try await TestEnvironment.eventually { try await store.entry(good.id) != nil }, "the replayed event is logged")
            let remaining = try await DeadLetters.list(on: connection)
            #expect(remaining.map(\.id) == ["bad-1"])
        }
    }
}
