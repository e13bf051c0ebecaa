package import Foundation
package import Logging
import PostgresNIO

/// What `agentry-bench` reads from and deletes in the database: the runs and events of its bench agents.
package struct BenchmarkStore: Sendable {
    let database: Database
    let logger: Logger

    package init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    // MARK: The event log bench

    /// Events of `type` published with `source` that `event_log` holds.
    package func loggedCount(type: String, source: String) async throws -> Int {
        let rows = try await database.query("SELECT count(*)::int8 FROM event_log WHERE event_type = \(type) AND source = \(source)", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    package func deleteEvents(type: String) async throws {
        try await database.query("DELETE FROM event_log WHERE event_type = \(type)", logger: logger)
    }

    // MARK: The worker benches

    /// Bench agents (`bench-noop-*`) that are retired.
    package func retiredBenchAgents() async throws -> [String] {
        var agents: [String] = []
        let rows = try await database.query(
            """
            SELECT agent_id FROM agents WHERE agent_id LIKE 'bench-noop-%' AND status = 'retired'
            """, logger: logger)
        for try await id in rows.decode(String.self) { agents.append(id) }
        return agents
    }

    /// Vacuums and analyzes the tables the runs write.
    package func vacuumRuntimeTables() async throws {
        try await database.query("VACUUM (ANALYZE) task_runs, event_log, agent_slots, agent_instances, workers", logger: logger)
    }

    /// Deletes everything the runs of `agents` wrote: their events (`eventTypes` from `sources`), lifecycle events,
    /// workers, instances, runs, slots and registrations.
    package func deleteRows(of agents: [String], eventTypes: [String], sources: [String]) async throws {
        let logger = self.logger
        try await database.withTransaction(logger: logger) { c in
            try await c.query(
                """
                DELETE FROM event_log WHERE (event_type = ANY(\(eventTypes)) AND source = ANY(\(sources)))
                    OR (event_type LIKE 'agent.%' AND payload->>'agent_id' = ANY(\(agents)))
                """, logger: logger)
            try await c.query(
                """
                DELETE FROM workers WHERE worker_id IN (SELECT worker_id FROM agent_instances WHERE agent_id = ANY(\(agents)))
                """, logger: logger)
            try await c.query("DELETE FROM agent_instances WHERE agent_id = ANY(\(agents))", logger: logger)
            try await c.query("DELETE FROM task_runs WHERE agent_id = ANY(\(agents))", logger: logger)
            try await c.query("DELETE FROM agent_slots WHERE agent_id = ANY(\(agents))", logger: logger)
            try await c.query("DELETE FROM agents WHERE agent_id = ANY(\(agents))", logger: logger)
            try await c.query("DELETE FROM agent_registry WHERE agent_id = ANY(\(agents))", logger: logger)
        }
    }

    /// Runs of `type` by `agentID` that succeeded.
    package func succeededRuns(agentID: String, type: String) async throws -> Int {
        let rows = try await database.query(
            """
            SELECT count(*) FILTER (WHERE state = 'succeeded')::int8 FROM task_runs
            WHERE agent_id = \(agentID) AND state IN ('succeeded', 'skipped') AND event_type = \(type)
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Runs of `type` by `agentID` that ended other than succeeded.
    package func otherRuns(agentID: String, type: String) async throws -> Int {
        let rows = try await database.query(
            """
            SELECT count(*)::int8 FROM task_runs
            WHERE agent_id = \(agentID) AND event_type = \(type) AND state NOT IN ('succeeded', 'running')
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// The first start and the last finish of the succeeded runs of `type`; nil when there is none.
    package func span(agentID: String, type: String) async throws -> (first: Date, last: Date)? {
        let rows = try await database.query(
            """
            SELECT min(started_at), max(finished_at) FROM task_runs WHERE agent_id = \(agentID) AND event_type = \(type) AND state = 'succeeded'
            """, logger: logger)
        for try await (first, last) in rows.decode((Date?, Date?).self) {
            guard let first, let last else { return nil }
            return (first, last)
        }
        return nil
    }

    /// Event id → receipt, start and finish of its succeeded run.
    package func runTimes(agentID: String, type: String) async throws -> [String: (received: Date?, started: Date, finished: Date?)] {
        var result: [String: (received: Date?, started: Date, finished: Date?)] = [:]
        let rows = try await database.query(
            """
            SELECT event_id::text, received_at, started_at, finished_at FROM task_runs
            WHERE agent_id = \(agentID) AND event_type = \(type) AND state = 'succeeded'
            """, logger: logger)
        for try await (eventID, received, started, finished) in rows.decode((String, Date?, Date, Date?).self) {
            result[eventID] = (received, started, finished)
        }
        return result
    }

    /// Event id → timestamp of the `agent.task.started` event of its run, as logged in event_log.
    package func startAnnouncements(agentID: String, type: String) async throws -> [String: Date] {
        var result: [String: Date] = [:]
        let rows = try await database.query(
            """
            SELECT causation_id, "timestamp" FROM event_log
            WHERE event_type = 'agent.task.started' AND payload->>'agent_id' = \(agentID) AND payload->>'event_type' = \(type)
            """, logger: logger)
        for try await (eventID, timestamp) in rows.decode((String?, Date).self) {
            if let eventID { result[eventID] = timestamp }
        }
        return result
    }

    /// What `event_log` holds of a bench agent's run: its events (`eventTypes` from `source`) and its lifecycle events;
    /// and what it should hold: the events its runs took, and its succeeded runs.
    package func eventLogProgress(
        agentID: String, eventTypes: [String], source: String
    ) async throws
        -> (events: Int, lifecycle: Int, runEvents: Int, succeeded: Int)
    {
        let rows = try await database.query(
            """
            SELECT (SELECT count(*) FROM event_log WHERE event_type = ANY(\(eventTypes)) AND source = \(source))::int8,
                   (SELECT count(*) FROM event_log WHERE event_type IN ('agent.task.started', 'agent.task.completed')
                                                      AND payload->>'agent_id' = \(agentID))::int8,
                   (SELECT count(DISTINCT event_id) FROM task_runs WHERE agent_id = \(agentID))::int8,
                   (SELECT count(*) FROM task_runs WHERE agent_id = \(agentID) AND state = 'succeeded')::int8
            """, logger: logger)
        for try await (events, lifecycle, runEvents, succeeded) in rows.decode((Int64, Int64, Int64, Int64).self) {
            return (Int(events), Int(lifecycle), Int(runEvents), Int(succeeded))
        }
        return (0, 0, 0, 0)
    }

    /// The succeeded run of the CRITICAL event of type `criticalType` published at `publishedAt`, and the LOW runs
    /// (type `lowType`) that started between that publish and its start: all of them, those whose deliveries reached
    /// the worker after the publish but before the CRITICAL, and those that reached it after the CRITICAL.
    package func priorityInversions(
        agentID: String, lowType: String, criticalType: String, publishedAt: Date
    ) async throws
        -> [(started: Date, received: Date?, lowBefore: Int, lowDispatchedAfter: Int, lowOvertaking: Int)]
    {
        let rows = try await database.query(
            """
            SELECT c.started_at, c.received_at,
                   count(l.run_id)::int8,
                   count(l.run_id) FILTER (WHERE l.received_at > \(publishedAt) AND l.received_at <= c.received_at)::int8,
                   count(l.run_id) FILTER (WHERE l.received_at > c.received_at)::int8
            FROM task_runs c
            LEFT JOIN task_runs l ON l.agent_id = c.agent_id AND l.event_type = \(lowType)
                 AND l.started_at > \(publishedAt) AND l.started_at < c.started_at
            WHERE c.agent_id = \(agentID) AND c.event_type = \(criticalType) AND c.state = 'succeeded'
            GROUP BY c.run_id, c.started_at, c.received_at
            """, logger: logger)
        var result: [(started: Date, received: Date?, lowBefore: Int, lowDispatchedAfter: Int, lowOvertaking: Int)] = []
        for try await (started, received, before, dispatchedAfter, overtaking) in rows.decode((Date, Date?, Int64, Int64, Int64).self) {
            result.append((started, received, Int(before), Int(dispatchedAfter), Int(overtaking)))
        }
        return result
    }
}
