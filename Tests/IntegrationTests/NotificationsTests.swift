import AgentryRuntime
import AgentryStore
import Foundation
import PostgresNIO
import Testing

/// The process's notification session (`Database.notifications`), against the real database.
@Suite("Notifications: one LISTEN session, shared and reopened")
struct NotificationsTests {
    /// Sends `payload` on `channel` from a pooled connection.
    func notify(_ database: Database, _ channel: String, _ payload: String) async throws {
        try await database.query("SELECT pg_notify(\(channel), \(payload))", logger: TestEnvironment.logger)
    }

    @Test("subscribers share one session; each hears its own channels; one that joins late is told at once that it listens")
    func shared() async throws {
        let channelA = TestEnvironment.uniqueName("agentry_test_a_")
        let channelB = TestEnvironment.uniqueName("agentry_test_b_")
        try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { database in
            let first = Collector<Notifications.Event>()
            let second = Collector<Notifications.Event>()
            let a = database.notifications.subscribe(to: [channelA]) { event in Task { await first.append(event) } }
            defer { a.cancel() }
            #expect(try await TestEnvironment.eventually { await first.values.contains { if case .listening = $0 { true } else { false } } })
            let b = database.notifications.subscribe(to: [channelA, channelB]) { event in Task { await second.append(event) } }
            defer { b.cancel() }
            #expect(try await TestEnvironment.eventually {
                await Set(second.values.compactMap { if case .listening(let channel, _) = $0 { channel } else { nil } }) == [channelA, channelB]
            })
            let pids = Set((await first.values + second.values).compactMap { if case .listening(_, let pid) = $0 { pid } else { nil } })
            #expect(pids.count == 1, "one session: \(pids)")
            try await notify(database, channelA, "to both")
            try await notify(database, channelB, "to the second")
            let bothHeard = try await TestEnvironment.eventually {
                let heard = await second.values
                return heard.contains(.notification(channel: channelB, payload: "to the second"))
                    && heard.contains(.notification(channel: channelA, payload: "to both"))
            }
            #expect(bothHeard)
            let heard = await first.values
            #expect(heard.contains(.notification(channel: channelA, payload: "to both")))
            #expect(!heard.contains(.notification(channel: channelB, payload: "to the second")), "\(heard)")
        }
    }

    @Test("a session the server ends is reopened: subscribers are told why, then that it listens again, on a new session")
    func reopened() async throws {
        let channel = TestEnvironment.uniqueName("agentry_test_r_")
        try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { database in
            let events = Collector<Notifications.Event>()
            let subscription = database.notifications.subscribe(to: [channel]) { event in Task { await events.append(event) } }
            defer { subscription.cancel() }
            func pids() async -> [Int] { await events.values.compactMap { if case .listening(_, let pid) = $0 { pid } else { nil } } }
            #expect(try await TestEnvironment.eventually { await pids().count == 1 })
            let first = try #require(await pids().first)
            try await database.query("SELECT pg_terminate_backend(\(first)::integer)", logger: TestEnvironment.logger)
            #expect(try await TestEnvironment.eventually { await pids().count == 2 })
            #expect(await events.values.contains { if case .interrupted = $0 { true } else { false } })
            let second = try #require(await pids().last)
            #expect(second != first)
            try await notify(database, channel, "after")
            #expect(try await TestEnvironment.eventually { await events.values.contains(.notification(channel: channel, payload: "after")) })
        }
    }

    @Test("the last subscription cancelled closes the session")
    func closedWhenUnused() async throws {
        let channel = TestEnvironment.uniqueName("agentry_test_c_")
        try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { database in
            let events = Collector<Notifications.Event>()
            let subscription = database.notifications.subscribe(to: [channel]) { event in Task { await events.append(event) } }
            let listening = try await TestEnvironment.eventually {
                await events.values.contains { if case .listening = $0 { true } else { false } }
            }
            #expect(listening)
            guard case .listening(_, let pid)? = await events.values.first else { return }
            subscription.cancel()
            let closed = try await TestEnvironment.eventually {
                var alive = 1
                for try await n in try await database.query("SELECT count(*)::int8 FROM pg_stat_activity WHERE pid = \(pid)::integer",
                                                            logger: TestEnvironment.logger).decode(Int64.self) { alive = Int(n) }
                return alive == 0
            }
            #expect(closed)
        }
    }
}
