import AgentryRuntime
import Foundation
import PostgresNIO
import Testing

@testable import AgentryStore

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
            #expect(
                try await TestEnvironment.eventually {
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
                for try await n in try await database.query(
                    "SELECT count(*)::int8 FROM pg_stat_activity WHERE pid = \(pid)::integer",
                    logger: TestEnvironment.logger
                ).decode(Int64.self) { alive = Int(n) }
                return alive == 0
            }
            #expect(closed)
        }
    }
}

/// Sessions of their own (the notification session, lock sessions): opened and set up within a deadline.
@Suite("Sessions of their own")
struct OwnSessionTests {
    @Test("a session whose setup statement does not answer in time is closed, and the opening fails saying so")
    func setupPastDeadline() async throws {
        let started = ContinuousClock.now
        let error = await #expect(throws: StoreError.self) {
            _ = try await Database.openSession(
                TestEnvironment.configuration.database, setup: "SELECT pg_sleep(10)",
                within: .milliseconds(500), logger: TestEnvironment.logger)
        }
        #expect(error?.message.contains("did not set up a new session within") == true, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(4), "gave up after \(ContinuousClock.now - started)")
    }

    @Test("a session the server ends during its setup fails at once instead of waiting for an answer")
    func endedDuringSetup() async throws {
        var configuration = TestEnvironment.configuration.database
        configuration.applicationName = TestEnvironment.uniqueName("agentry-test-setup-")
        let name = configuration.applicationName
        let opening = Task {
            try await Database.openSession(configuration, setup: "SELECT pg_sleep(30)", logger: TestEnvironment.logger)
        }
        let started = ContinuousClock.now
        try await Database.with(TestEnvironment.configuration.database, logger: TestEnvironment.logger) { db in
            let ended = try await TestEnvironment.eventually {
                var count = 0
                for try await n in try await db.query(
                    """
                    SELECT count(*)::int8 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                                WHERE application_name = \(name) AND query LIKE '%pg_sleep%') t
                    """, logger: TestEnvironment.logger
                ).decode(Int64.self) { count = Int(n) }
                return count == 1
            }
            #expect(ended, "the session's backend was found and ended")
        }
        await #expect(throws: (any Error).self) { _ = try await opening.value }
        #expect(ContinuousClock.now - started < .seconds(8), "failed after \(ContinuousClock.now - started), not at its 10 s deadline")
    }
}
