import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// History retention (`RuntimeStore.pruneHistory`, `agentry history prune`, `agentry worker --history-retention-days`),
/// each test on a database of its own, so that the counts are exact and no other test's rows are touched.
@Suite("History retention")
struct HistoryRetentionTests {
    static let logger = TestEnvironment.logger

    /// Old and recent history: 5 events from 40 days ago and 3 from an hour ago; runs from 40 days ago (4 succeeded,
    /// 1 failed, 1 still running) and 2 recent ones.
    static let oldEvents = 5, recentEvents = 3, oldFinishedRuns = 5, oldRunningRuns = 1, recentRuns = 2

    /// A new database, migrated and filled with the history above; dropped afterwards.
    static func withHistory(_ body: @Sendable (Database, String) async throws -> Void) async throws {
        try await TestEnvironment.withFreshDatabase("h") { db, url in
            try await db.client.query(
                """
                INSERT INTO event_log (event_id, event_type, payload, priority, "timestamp")
                SELECT gen_random_uuid()::text, 'history.old', '{}'::jsonb, 3, now() - interval '40 days' FROM generate_series(1, \(oldEvents))
                UNION ALL
                SELECT gen_random_uuid()::text, 'history.recent', '{}'::jsonb, 3, now() - interval '1 hour' FROM generate_series(1, \(recentEvents))
                """, logger: logger)
            try await db.client.query(
                """
                INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, state, started_at, finished_at)
                SELECT gen_random_uuid(), 'history-agent', '1.0.0', gen_random_uuid(), 'history.old', 3, s,
                       now() - interval '40 days', CASE WHEN s = 'running' THEN NULL ELSE now() - interval '40 days' END
                FROM unnest(ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'running']) AS s
                UNION ALL
                SELECT gen_random_uuid(), 'history-agent', '1.0.0', gen_random_uuid(), 'history.recent', 3, 'succeeded',
                       now() - interval '1 hour', now() - interval '1 hour'
                FROM generate_series(1, \(recentRuns))
                """, logger: logger)
            try await body(db, url)
        }
    }

    /// What is left: (event types, run states by event type).
    static func remaining(_ db: Database) async throws -> (events: [String: Int], runs: [String: Int]) {
        var events: [String: Int] = [:], runs: [String: Int] = [:]
        for try await (type, count) in try await db.client.query(
            "SELECT event_type, count(*)::int8 FROM event_log GROUP BY 1", logger: logger
        ).decode((String, Int64).self) {
            events[type] = Int(count)
        }
        for try await (key, count) in try await db.client.query(
            "SELECT event_type || '/' || state, count(*)::int8 FROM task_runs GROUP BY 1", logger: logger
        ).decode((String, Int64).self) {
            runs[key] = Int(count)
        }
        return (events, runs)
    }

    static let keptRuns = ["history.old/running": oldRunningRuns, "history.recent/succeeded": recentRuns]

    @Test("deletes events and finished runs past the retention, in batches, and keeps running runs and recent history")
    func prunesOldHistory() async throws {
        try await Self.withHistory { db, _ in
            let store = RuntimeStore(database: db, logger: Self.logger)
            let pruned = try await store.pruneHistory(olderThan: .seconds(30 * 86_400), batchSize: 2)
            #expect(pruned.events == Self.oldEvents)
            #expect(pruned.runs == Self.oldFinishedRuns)
            #expect(pruned.complete)
            let left = try await Self.remaining(db)
            #expect(left.events == ["history.recent": Self.recentEvents])
            #expect(left.runs == Self.keptRuns)

            let again = try await store.pruneHistory(olderThan: .seconds(30 * 86_400))
            #expect(again == RuntimeStore.PrunedHistory())
        }
    }

    @Test("stops after maxBatches statements per table and says more is left")
    func stopsAtMaxBatches() async throws {
        try await Self.withHistory { db, _ in
            let store = RuntimeStore(database: db, logger: Self.logger)
            let first = try await store.pruneHistory(olderThan: .seconds(30 * 86_400), batchSize: 2, maxBatches: 1)
            #expect(first.events == 2)
            #expect(first.runs == 2)
            #expect(!first.complete)
            let rest = try await store.pruneHistory(olderThan: .seconds(30 * 86_400), batchSize: 2, maxBatches: 10)
            #expect(rest.events == Self.oldEvents - 2)
            #expect(rest.runs == Self.oldFinishedRuns - 2)
            #expect(rest.complete)
        }
    }

    @Test("deletes nothing while another process is pruning, and says so")
    func yieldsToAnotherPruner() async throws {
        try await Self.withHistory { db, _ in
            let store = RuntimeStore(database: db, logger: Self.logger)
            let whileHeld = try await db.client.withTransaction(logger: Self.logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext('agentry.history-prune'))", logger: Self.logger)
                return try await store.pruneHistory(olderThan: .seconds(30 * 86_400))
            }
            #expect(whileHeld.events == 0 && whileHeld.runs == 0)
            #expect(!whileHeld.complete)
            let after = try await store.pruneHistory(olderThan: .seconds(30 * 86_400))
            #expect(after.events == Self.oldEvents && after.runs == Self.oldFinishedRuns && after.complete)
        }
    }

    @Test("a cancelled prune (a worker shutting down) stops before its next statement")
    func cancelledPruneStops() async throws {
        try await Self.withHistory { db, _ in
            let store = RuntimeStore(database: db, logger: Self.logger)
            let cancelled = Task { () async throws -> RuntimeStore.PrunedHistory in
                withUnsafeCurrentTask { $0?.cancel() }
                return try await store.pruneHistory(olderThan: .seconds(30 * 86_400), batchSize: 2)
            }
            let pruned = try await cancelled.value
            #expect(pruned.events == 0 && pruned.runs == 0 && !pruned.complete)
            #expect(try await Self.remaining(db).events["history.old"] == Self.oldEvents)
        }
    }

    @Test("agentry history prune deletes what is older than --older-than-days and says how much; a bad value is named")
    func pruneCommand() async throws {
        try await Self.withHistory { db, url in
            let environment = ["AGENTRY_DATABASE_URL": url]
            let bad = try TestEnvironment.run(
                TestEnvironment.agentryExecutable, ["history", "prune", "--older-than-days", "0"],
                environment: environment)
            #expect(bad.status != 0)
            #expect(bad.output.contains("--older-than-days must be more than 0"), "said: \(bad.output)")
            #expect(try await Self.remaining(db).events["history.old"] == Self.oldEvents, "a refused command deletes nothing")

            // While another process prunes (holds the lock), the command says so and fails.
            let busy = try await db.client.withTransaction(logger: Self.logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext('agentry.history-prune'))", logger: Self.logger)
                return try TestEnvironment.run(
                    TestEnvironment.agentryExecutable, ["history", "prune", "--older-than-days", "30"],
                    environment: environment)
            }
            #expect(busy.status != 0)
            #expect(
                busy.output.contains("another process (a worker with --history-retention-days) is deleting the history now"),
                "said: \(busy.output)")

            let result = try TestEnvironment.run(
                TestEnvironment.agentryExecutable, ["history", "prune", "--older-than-days", "30"],
                environment: environment)
            #expect(result.status == 0, "said: \(result.output)")
            #expect(
                result.output.contains("deleted \(Self.oldEvents) event(s) and \(Self.oldFinishedRuns) run(s) older than 30.0 day(s)"),
                "said: \(result.output)")
            let left = try await Self.remaining(db)
            #expect(left.events == ["history.recent": Self.recentEvents])
            #expect(left.runs == Self.keptRuns)
        }
    }

    @Test("a worker with --history-retention-days deletes the history past it; without the flag it keeps everything")
    func workerPrunes() async throws {
        try await Self.withHistory { db, url in
            let environment = ["AGENTRY_DATABASE_URL": url]
            let agent = TestEnvironment.uniqueName("history-")
            let keeping = try WorkerProcess(agents: [agent], environment: environment)
            let started = await (try? TestEnvironment.eventually { keeping.output.contains("worker started") }) ?? false
            try? await Task.sleep(for: .seconds(1))
            await keeping.stop()
            #expect(started, "worker said: \(keeping.output)")
            #expect(try await Self.remaining(db).events["history.old"] == Self.oldEvents, "without the flag nothing is deleted")

            let worker = try WorkerProcess(agents: [agent], extra: ["--history-retention-days", "30"], environment: environment)
            do {
                // Events go first, then runs, each in statements of their own: wait for both.
                let pruned = try await TestEnvironment.eventually(timeout: .seconds(20)) {
                    let left = try await Self.remaining(db)
                    return left.events["history.old"] == nil && left.runs == Self.keptRuns
                }
                #expect(pruned, "worker said: \(worker.output)")
                let left = try await Self.remaining(db)
                #expect(left.events == ["history.recent": Self.recentEvents])
                #expect(left.runs == Self.keptRuns)
                #expect(
                    try await TestEnvironment.eventually { worker.output.contains("deleted history past its retention") },
                    "worker said: \(worker.output)")
            } catch {
                await worker.stop()
                throw error
            }
            await worker.stop()
        }
    }
}
