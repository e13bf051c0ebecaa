import AgentryCore
public import Foundation
import Logging
import PostgresNIO

/// Flow control's records: deferred runs (waiting, without a slot, for their key's turn, a rate token, a budget's
/// next period or the end of a debounce window), per-key concurrency and the rate buckets. See ``FlowControl``.
public struct FlowStore: Sendable {
    let database: Database
    let logger: Logger

    /// Why a run waits.
    public enum DeferReason: String, Sendable, Hashable, CaseIterable {
        case concurrency, rate, budget, debounce
    }

    /// Makes a running run (in its slot) deferred: its slot given back, its event kept, tried again at `until`.
    /// Returns false when the run was not running (cancelled or declared lost meanwhile).
    public func deferRun(
        _ run: TaskRun, event: String, reason: DeferReason, until: Date, message: String, flowKey: String?
    ) async throws -> Bool {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                var updated = false
                for try await _ in try await connection.queryAll(
                    """
                    UPDATE task_runs SET state = 'deferred', event = \(event)::jsonb, defer_reason = \(reason.rawValue), flow_key = \(flowKey),
                           resume_at = \(until), resume_published_at = NULL, message = \(message)
                    WHERE run_id = \(run.runID) AND state IN ('running', 'lost')
                    RETURNING run_id
                    """, logger: logger)
                { updated = true }
                guard updated else { return false }
                try await connection.releaseSlot(of: run, logger: logger)
                return true
            }
        } catch {
            throw StoreError(.query, "cannot defer run \(run.runID)", cause: error)
        }
    }

    /// Whether a running run may go on under its key's concurrency: with fewer than `limit` other running runs of the
    /// agent with that key it takes the key (its `flow_key` set) and true comes back; else it is deferred (slot given
    /// back, event kept) until `fallback`, when it is tried again unless a run of its key ends first and wakes it.
    /// One advisory lock per agent and key makes the count and the taking one step across workers.
    public func takeKey(
        _ run: TaskRun, key: String, limit: Int, event: String, fallback: Date, message: String
    ) async throws -> Bool {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                try await connection.queryAll("SELECT pg_advisory_xact_lock(hashtextextended(\("flow:\(run.agentID):\(key)"), 0))", logger: logger)
                var others = 0
                for try await count in try await connection.queryAll(
                    """
                    SELECT count(*)::int4 FROM task_runs
                    WHERE agent_id = \(run.agentID) AND flow_key = \(key) AND state = 'running' AND run_id <> \(run.runID)
                    """, logger: logger
                ).decode(Int32.self) { others = Int(count) }
                if others < limit {
                    try await connection.queryAll(
                        "UPDATE task_runs SET flow_key = \(key) WHERE run_id = \(run.runID)", logger: logger)
                    return true
                }
                try await connection.queryAll(
                    """
                    UPDATE task_runs SET state = 'deferred', event = \(event)::jsonb, defer_reason = 'concurrency', flow_key = \(key),
                           resume_at = \(fallback), resume_published_at = NULL, message = \(message)
                    WHERE run_id = \(run.runID) AND state IN ('running', 'lost')
                    """, logger: logger)
                try await connection.releaseSlot(of: run, logger: logger)
                return false
            }
        } catch {
            throw StoreError(.query, "cannot take flow key '\(key)' for run \(run.runID)", cause: error)
        }
    }

    /// After a run of `key` ended: the next run deferred for that key (highest priority, then oldest) is due now. Under
    /// the key's lock, so that a run deferred at the same moment is seen.
    public func wakeNext(agentID: String, key: String) async throws {
        let logger = self.logger
        do {
            try await database.withTransaction(logger: logger) { connection in
                try await connection.queryAll("SELECT pg_advisory_xact_lock(hashtextextended(\("flow:\(agentID):\(key)"), 0))", logger: logger)
                try await connection.queryAll(
                    """
                    UPDATE task_runs SET resume_at = now() WHERE run_id = (
                        SELECT run_id FROM task_runs
                        WHERE agent_id = \(agentID) AND flow_key = \(key) AND state = 'deferred' AND defer_reason = 'concurrency'
                        ORDER BY priority DESC, event_at NULLS LAST, started_at LIMIT 1)
                    """, logger: logger)
            }
        } catch {
            throw StoreError(.query, "cannot wake the next run of flow key '\(key)'", cause: error)
        }
    }

    /// Takes one token from the bucket (`capacity` tokens, refilled at `refillPerSecond`); nil when taken, else how
    /// long until a token is there. The bucket's row lock makes concurrent takers wait for each other.
    public func takeToken(agentID: String, bucket: String, capacity: Double, refillPerSecond: Double) async throws -> Double? {
        var wait: Double?
        try await database.each(
            "take a rate token of \(agentID)", writes: true,
            """
            WITH taken AS (
                INSERT INTO flow_buckets AS b (agent_id, bucket, tokens, updated_at)
                VALUES (\(agentID), \(bucket), \(capacity) - 1, clock_timestamp())
                ON CONFLICT (agent_id, bucket) DO UPDATE
                SET tokens = least(\(capacity), b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * \(refillPerSecond)) - 1,
                    updated_at = clock_timestamp()
                WHERE least(\(capacity), b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * \(refillPerSecond)) >= 1
                RETURNING tokens
            )
            SELECT EXISTS (SELECT 1 FROM taken),
                   coalesce((SELECT least(\(capacity), tokens + extract(epoch FROM clock_timestamp() - updated_at) * \(refillPerSecond))
                             FROM flow_buckets WHERE agent_id = \(agentID) AND bucket = \(bucket)), 0)::float8
            """, logger: logger
        ) { row in
            let (taken, tokens) = try row.decode((Bool, Double).self)
            wait = taken ? nil : max(0.01, (1 - tokens) / refillPerSecond)
        }
        return wait
    }

    /// Records an arriving event of a debounced agent as a deferred run due at the end of the window, and marks the
    /// runs of the same key still waiting in their window skipped: of a burst, only the last event runs. Returns how
    /// many it superseded.
    public func debounce(_ run: TaskRun, key: String, event: String, until: Date, message: String) async throws -> Int {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                try await connection.queryAll(
                    "SELECT pg_advisory_xact_lock(hashtextextended(\("debounce:\(run.agentID):\(key)"), 0))", logger: logger)
                var superseded = 0
                for try await _ in try await connection.queryAll(
                    """
                    UPDATE task_runs SET state = 'skipped', finished_at = clock_timestamp(),
                           message = 'superseded by event ' || \(run.eventID) || ' within the debounce window'
                    WHERE agent_id = \(run.agentID) AND flow_key = \(key) AND state = 'deferred' AND defer_reason = 'debounce'
                      AND resume_published_at IS NULL AND event_id <> \(run.eventID)
                    RETURNING run_id
                    """, logger: logger)
                { superseded += 1 }
                try await connection.queryAll(
                    """
                    INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, worker_id, instance_id, attempt,
                                           state, event_at, received_at, started_at, event, defer_reason, flow_key, resume_at, message)
                    SELECT \(run.runID), \(run.agentID), \(run.agentVersion), \(run.eventID), \(run.eventType), \(run.priority.rawValue),
                           \(run.workerID), \(run.instanceID), \(run.attempt), 'deferred', \(run.eventAt), \(run.receivedAt), clock_timestamp(),
                           \(event)::jsonb, 'debounce', \(key), \(until), \(message)
                    -- A redelivery of an event recorded already (its ack was lost) records nothing more.
                    WHERE NOT EXISTS (
                        SELECT 1 FROM task_runs WHERE agent_id = \(run.agentID) AND event_id = \(run.eventID)
                          AND state IN ('deferred', 'resuming', 'running', 'succeeded', 'skipped', 'cancelled'))
                    """, logger: logger)
                return superseded
            }
        } catch {
            throw StoreError(.query, "cannot record the debounced run of event \(run.eventID)", cause: error)
        }
    }

    /// Deferred runs whose time came: made `resuming` (their resume due now), for the scheduler's leader to publish.
    public func wakeDue(limit: Int = 200) async throws -> [RunWake] {
        var wakes: [RunWake] = []
        try await database.each(
            "wake the deferred runs that are due", writes: true,
            """
            WITH due AS (
                SELECT run_id FROM task_runs WHERE state = 'deferred' AND resume_at <= now()
                ORDER BY priority DESC, resume_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
            )
            UPDATE task_runs r SET state = 'resuming', resume_at = now(), resume_published_at = NULL
            FROM due d WHERE r.run_id = d.run_id
            RETURNING r.run_id, r.agent_id, r.agent_version, r.event::text
            """, logger: logger
        ) { row in
            let (runID, agent, version, event) = try row.decode((UUID, String, String, String).self)
            wakes.append(RunWake(runID: runID, agentID: agent, agentVersion: version, event: event))
        }
        return wakes
    }

    /// The number of deferred runs per agent and reason, for the status page and metrics.
    public func deferredCounts() async throws -> [(agentID: String, reason: String, count: Int)] {
        var counts: [(agentID: String, reason: String, count: Int)] = []
        try await database.each(
            "count the deferred runs",
            "SELECT agent_id, coalesce(defer_reason, ''), count(*)::int4 FROM task_runs WHERE state = 'deferred' GROUP BY 1, 2 ORDER BY 1, 2",
            logger: logger
        ) { row in
            let (agent, reason, count) = try row.decode((String, String, Int32).self)
            counts.append((agent, reason, Int(count)))
        }
        return counts
    }
}

extension RuntimeStore {
    public var flow: FlowStore { FlowStore(database: database, logger: logger) }
}
