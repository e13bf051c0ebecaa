import AgentryCore
import Foundation
import PostgresNIO

// The statements of a worker's hot path, prepared once per connection: a claim and an outcome are written for every
// event, and parsing and planning these CTEs afresh each time cost PostgreSQL about a tenth of its time.

/// Claims a batch of runs of one agent (see ``RuntimeStore/claim(batch:announcing:maxParallel:workerExpiry:)``).
struct ClaimStatement: PostgresPreparedStatement {
    /// Named here: the protocol's default name is built with `String(reflecting:)` on every execution.
    static let name = "agentry_claim"
    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int4[], $7::float8[], $8::int4[],
                                 $14::float8[])
                AS t(run_id, event_id, event_type, version, priority, attempt, event_at, ord, received_at)
        ), same_event AS (
            -- The agent's runs of these events, by one index lookup per event: the runs that completed them, that run
            -- them now, or that are this very claim's (an earlier try). The checks below read only these rows: driven
            -- from the agent's running runs instead, the check for a run elsewhere scanned them all for every claim.
            SELECT r.run_id, r.event_id, r.state, r.retry_cancelled, r.worker_id FROM task_runs r
            WHERE r.event_id = ANY ($2::text[]) AND r.agent_id = $9::text
        ), completed AS (
            SELECT DISTINCT ON (i.run_id) i.run_id, CASE WHEN r.retry_cancelled THEN 'cancelled' ELSE r.state END AS state
            FROM input i
            -- A run waiting for its children, an approval or its turn (deferred), or resuming, holds its event, and a rejected
            -- or over-budget one ended it: a
            -- redelivery of it is settled.
            JOIN same_event r ON r.event_id = i.event_id AND (r.state IN ('succeeded', 'skipped', 'waiting', 'resuming', 'awaiting_approval', 'rejected', 'deferred', 'over_budget') OR r.retry_cancelled)
        ), known AS (
            -- Recorded already, by an earlier try of this claim whose answer was lost with its connection. Running, with
            -- its slot: the run is this claim's again. Otherwise its worker (this one) was declared lost in between, which
            -- ended the run as 'lost' and freed its slot: the caller claims again under a new run id.
            SELECT i.run_id, r.state, s.slot FROM input i
            JOIN same_event r ON r.run_id = i.run_id
            LEFT JOIN agent_slots s ON r.state = 'running' AND s.agent_id = $9::text AND s.run_id = i.run_id
        ), elsewhere AS (
            SELECT DISTINCT ON (i.run_id) i.run_id, r.run_id AS other_run, r.worker_id FROM input i
            JOIN same_event r ON r.event_id = i.event_id AND r.state = 'running' AND r.run_id <> i.run_id
            JOIN workers w ON w.worker_id = r.worker_id AND w.status IN ('running', 'stopping')
                 AND w.heartbeat_at > now() - make_interval(secs => $10::float8)
        ), candidates AS (
            SELECT DISTINCT ON (i.event_id) i.* FROM input i
            WHERE NOT EXISTS (SELECT 1 FROM completed c WHERE c.run_id = i.run_id)
              AND NOT EXISTS (SELECT 1 FROM elsewhere e WHERE e.run_id = i.run_id)
              AND NOT EXISTS (SELECT 1 FROM known k WHERE k.run_id = i.run_id)
            ORDER BY i.event_id, i.ord
        ), wanting AS (
            SELECT c.*, row_number() OVER (ORDER BY c.ord) AS n FROM candidates c
        ), locked AS (
            SELECT s.slot FROM agent_slots s
            WHERE s.agent_id = $9::text AND s.slot < $11::int4
              -- Free, or held by a worker whose heartbeat expired, unless that is this worker: it is alive (it claims),
              -- its heartbeats only could not get through, and the slot may hold a run whose claim's answer it lost.
              AND (s.run_id IS NULL OR (s.worker_id <> $12::text AND NOT EXISTS (
                    SELECT 1 FROM workers w WHERE w.worker_id = s.worker_id AND w.status IN ('running', 'stopping')
                      AND w.heartbeat_at > now() - make_interval(secs => $10::float8))))
            ORDER BY s.slot LIMIT (SELECT count(*) FROM wanting)
            FOR UPDATE OF s SKIP LOCKED
        ), free AS MATERIALIZED (
            SELECT array_agg(slot ORDER BY slot) AS slots FROM locked
        ), pairs AS (
            -- The n-th event wanting a slot takes the n-th slot locked, by subscript into one array: a join on row
            -- numbers was planned as a nested loop that sorted the locked slots again for every event.
            SELECT w.*, f.slots[w.n::int4] AS slot
            FROM wanting w, free f
            WHERE w.n <= cardinality(f.slots)
        ), inserted AS (
            -- One running run per agent and event (task_runs_one_running): a claim of the same event by another
            -- worker at this instant makes this insert wait for it and then do nothing; this claim takes no slot and
            -- finds that run on its next try.
            INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, worker_id, instance_id,
                                   attempt, state, event_at, received_at, started_at)
            SELECT p.run_id, $9::text, p.version, p.event_id, p.event_type, p.priority, $12::text, $13::uuid,
                   p.attempt, 'running', CASE WHEN p.event_at = 0 THEN NULL ELSE to_timestamp(p.event_at) END,
                   CASE WHEN p.received_at = 0 THEN NULL ELSE to_timestamp(p.received_at) END, clock_timestamp()
            FROM pairs p
            ORDER BY p.ord
            ON CONFLICT (agent_id, event_id) WHERE state = 'running' DO NOTHING
            RETURNING run_id
        ), taken AS (
            UPDATE agent_slots s SET run_id = p.run_id, worker_id = $12::text, taken_at = now()
            FROM pairs p WHERE s.agent_id = $9::text AND s.slot = p.slot AND p.run_id IN (SELECT run_id FROM inserted)
            RETURNING p.run_id
        ), announced AS (
            \(EventColumns.insertAnnouncements(firstParameter: 15, ofRunsIn: "inserted"))
        )
        -- One row of arrays, one element per run (see ``Database/execute(_:logger:)``), '' or -1 for none.
        SELECT array_agg(i.run_id), array_agg(coalesce(c.state, '')), array_agg(coalesce(e.other_run, i.run_id)),
               array_agg(coalesce(e.worker_id, '')), array_agg(coalesce(p.slot, k.slot, -1)),
               array_agg(CASE WHEN k.slot IS NULL THEN coalesce(k.state, '') ELSE '' END)
        FROM input i LEFT JOIN completed c ON c.run_id = i.run_id LEFT JOIN elsewhere e ON e.run_id = i.run_id
             LEFT JOIN inserted n ON n.run_id = i.run_id LEFT JOIN pairs p ON p.run_id = n.run_id
             LEFT JOIN known k ON k.run_id = i.run_id
        """
    /// Per run, by position: its id, then the state of the run that completed its event already (''), or the run (its
    /// own id: none) and worker ('') running it now, or the slot it took (-1: busy), or the state in which this very run
    /// id was recorded and ended already ('').
    typealias Row = ([UUID], [String], [UUID], [String], [Int32], [String])

    let runs: [TaskRun]
    let announcements: EventColumns
    let agentID: String
    let workerID: String
    let instanceID: UUID?
    let maxParallel: Int
    let expirySeconds: Double

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 14 + EventColumns.parameterCount)
        bindings.append(runs.map(\.runID))
        bindings.append(runs.map(\.eventID))
        bindings.append(runs.map(\.eventType))
        bindings.append(runs.map(\.agentVersion))
        bindings.append(runs.map { Int32($0.priority.rawValue) })
        bindings.append(runs.map { Int32(clamping: $0.attempt) })
        bindings.append(runs.map { $0.eventAt?.timeIntervalSince1970 ?? 0 })
        bindings.append(runs.indices.map { Int32($0) })
        bindings.append(agentID)
        bindings.append(expirySeconds)
        bindings.append(Int32(clamping: maxParallel))
        bindings.append(workerID)
        bindings.append(instanceID)
        bindings.append(runs.map { $0.receivedAt?.timeIntervalSince1970 ?? 0 })
        announcements.append(to: &bindings)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}

/// Records the outcomes of a batch of runs and gives their slots back (see ``RuntimeStore/finish(batch:)``).
struct FinishStatement: PostgresPreparedStatement {
    static let name = "agentry_finish"
    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::text[], $9::float8[],
                                 $19::int4[], $20::int8[], $21::int8[], $22::float8[], $23::text[], $24::text[])
                AS t(run_id, agent_id, state, result, output, stderr, exit_status, message, retry_at, slot,
                     input_tokens, output_tokens, cost, currency, model)
        ), released AS (
            -- By the slot's key (the claim said which): an index lookup per run, never a scan of every agent's slots.
            UPDATE agent_slots s SET run_id = NULL, worker_id = NULL, taken_at = NULL
            FROM input i WHERE s.agent_id = i.agent_id AND s.slot = i.slot AND s.run_id = i.run_id
        ), released_unkeyed AS (
            UPDATE agent_slots s SET run_id = NULL, worker_id = NULL, taken_at = NULL
            WHERE s.agent_id IN (SELECT agent_id FROM input WHERE slot < 0)
              AND s.run_id IN (SELECT run_id FROM input WHERE slot < 0)
        ), finished AS (
            UPDATE task_runs r SET state = i.state, finished_at = clock_timestamp(), result = NULLIF(i.result, '')::jsonb,
                   output = NULLIF(i.output, ''), stderr = NULLIF(i.stderr, ''), exit_status = NULLIF(i.exit_status, -2147483648),
                   message = NULLIF(i.message, ''), retry_at = CASE WHEN i.retry_at = 0 THEN NULL ELSE to_timestamp(i.retry_at) END,
                   -- What the run used, added to what its earlier steps used (a run resumed after its children or an
                   -- approval); the columns are null until a step reports something.
                   input_tokens = coalesce(r.input_tokens + NULLIF(i.input_tokens, -1), r.input_tokens, NULLIF(i.input_tokens, -1)),
                   output_tokens = coalesce(r.output_tokens + NULLIF(i.output_tokens, -1), r.output_tokens, NULLIF(i.output_tokens, -1)),
                   cost = coalesce(r.cost + (CASE WHEN i.cost < 0 THEN NULL ELSE i.cost::numeric END), r.cost,
                                   CASE WHEN i.cost < 0 THEN NULL ELSE i.cost::numeric END),
                   currency = coalesce(NULLIF(i.currency, ''), r.currency), model = coalesce(NULLIF(i.model, ''), r.model)
            -- 'lost': its worker was declared lost while it still ran (its heartbeats could not reach the database for
            -- a while), and the worker finishes it after all. Only that worker holds the run, and the unique index on
            -- completions still refuses a second success if its event ran again elsewhere meanwhile.
            FROM input i WHERE r.run_id = i.run_id AND r.state IN ('running', 'lost')
            RETURNING r.run_id
        ), again AS (
            -- Recorded so by an earlier try of this statement, whose commit the connection did not live to confirm
            -- (see ``Database/committed(on:_:)``): recorded all the same, so that its caller announces it.
            SELECT r.run_id FROM task_runs r JOIN input i ON r.run_id = i.run_id
            WHERE r.state = i.state AND r.state NOT IN ('running', 'lost')
        ), announced AS (
            \(EventColumns.insertAnnouncements(firstParameter: 10, ofRunsIn: "finished"))
        )
        -- One row (see ``Database/execute(_:logger:)``).
        SELECT coalesce(array_agg(run_id), '{}') FROM (SELECT run_id FROM finished UNION ALL SELECT run_id FROM again) t
        """
    /// The runs recorded.
    typealias Row = [UUID]

    let batch: [(runID: UUID, agentID: String, slot: Int?, outcome: RuntimeStore.Outcome)]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 15 + EventColumns.parameterCount)
        bindings.append(batch.map(\.runID))
        bindings.append(batch.map(\.agentID))
        bindings.append(batch.map(\.outcome.state.rawValue))
        bindings.append(batch.map { $0.outcome.result ?? "" })
        bindings.append(batch.map { $0.outcome.output ?? "" })
        bindings.append(batch.map { $0.outcome.stderr ?? "" })
        bindings.append(batch.map { Int32(clamping: $0.outcome.exitStatus ?? Int(Int32.min)) })
        bindings.append(batch.map { $0.outcome.message ?? "" })
        bindings.append(batch.map { $0.outcome.retryAt?.timeIntervalSince1970 ?? 0 })
        EventColumns(announcing: batch.compactMap { item in item.outcome.announcement.map { (item.runID, $0) } }).append(to: &bindings)
        bindings.append(batch.map { Int32(clamping: $0.slot ?? -1) })
        // What the run used; -1 and '' for none.
        bindings.append(batch.map { Int64($0.outcome.usage?.inputTokens ?? -1) })
        bindings.append(batch.map { Int64($0.outcome.usage?.outputTokens ?? -1) })
        bindings.append(batch.map { $0.outcome.usage?.cost ?? -1 })
        bindings.append(batch.map { $0.outcome.usage?.currency ?? "" })
        bindings.append(batch.map { $0.outcome.usage?.model ?? "" })
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> [UUID] {
        try row.decode([UUID].self)
    }
}

/// Inserts a batch of events into `event_log`, once per id (see ``EventLogStore/insert(_:)``).
struct EventLogInsertStatement: PostgresPreparedStatement {
    static let name = "agentry_event_log_insert"
    static let sql = """
        INSERT INTO event_log (event_id, event_type, payload, priority, "timestamp", source, correlation_id, causation_id)
        SELECT id, type, payload::jsonb, priority, to_timestamp(ts), NULLIF(source, ''), NULLIF(correlation, ''), NULLIF(causation, '')
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::float8[], $6::text[], $7::text[], $8::text[])
             AS t(id, type, payload, priority, ts, source, correlation, causation)
        ON CONFLICT (event_id) DO NOTHING
        """
    typealias Row = Void

    let columns: EventColumns

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 8)
        columns.appendEvents(to: &bindings)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws {}
}

extension EventColumns {
    /// Binds taken by ``insertAnnouncements(firstParameter:ofRunsIn:)``.
    static let parameterCount = 9

    /// `INSERT INTO event_log` of the announcements (parameters `firstParameter` …, see ``append(to:)``) whose run id is
    /// returned by the CTE `recordedRuns`: a data-modifying CTE of the statement that records those runs, so that a
    /// run and its announcement are logged together or not at all.
    static func insertAnnouncements(firstParameter n: Int, ofRunsIn recordedRuns: String) -> String {
        """
        INSERT INTO event_log (event_id, event_type, payload, priority, "timestamp", source, correlation_id, causation_id)
            SELECT a.id, a.type, a.payload::jsonb, a.priority, to_timestamp(a.ts), NULLIF(a.source, ''), NULLIF(a.correlation, ''),
                   NULLIF(a.causation, '')
            FROM unnest($\(n)::uuid[], $\(n + 1)::text[], $\(n + 2)::text[], $\(n + 3)::text[], $\(n + 4)::int4[], $\(n + 5)::float8[],
                        $\(n + 6)::text[], $\(n + 7)::text[], $\(n + 8)::text[])
                 AS a(run_id, id, type, payload, priority, ts, source, correlation, causation)
            WHERE a.run_id IN (SELECT run_id FROM \(recordedRuns))
            ON CONFLICT (event_id) DO NOTHING
        """
    }

    /// The run ids, then the events' columns.
    func append(to bindings: inout PostgresBindings) {
        bindings.append(runIDs)
        appendEvents(to: &bindings)
    }

    func appendEvents(to bindings: inout PostgresBindings) {
        bindings.append(ids)
        bindings.append(types)
        bindings.append(payloads)
        bindings.append(priorities)
        bindings.append(timestamps)
        bindings.append(sources)
        bindings.append(correlations)
        bindings.append(causations)
    }
}
