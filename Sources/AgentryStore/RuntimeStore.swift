public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// A worker process, as it registers itself.
public struct WorkerRecord: Sendable, Hashable {
    public var workerID: String
    public var host: String
    public var pid: Int
    public var version: String
    /// The worker's labels as a JSON object (`{"lab": "lab-1"}`).
    public var labels: [String: String]
    public var startedAt: Date
    public var heartbeatAt: Date
    public var status: String
    /// Whether its heartbeat is recent enough for it to count as alive.
    public var alive: Bool

    public init(workerID: String, host: String, pid: Int, version: String, labels: [String: String],
                startedAt: Date = Date(), heartbeatAt: Date = Date(), status: String = "running", alive: Bool = true) {
        self.workerID = workerID
        self.host = host
        self.pid = pid
        self.version = version
        self.labels = labels
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.status = status
        self.alive = alive
    }
}

/// The seed's `AgentInstance`: one agent served by one worker.
public struct InstanceRecord: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        case idle, running, paused, error, stopped
    }
    public var instanceID: UUID
    public var agentID: String
    public var version: String
    public var workerID: String
    public var state: State
    public var currentTask: UUID?
    public var runningTasks: Int
    /// How many deliveries the instance takes at once (its share of the agent's limit); nil while it consumes nothing.
    public var prefetch: Int?
    public var startedAt: Date
    public var updatedAt: Date
    public var error: String?

    /// The prefetch while the instance takes events (idle or running); nil otherwise (a stopped or lost worker's
    /// rows keep their last value).
    public var consumingPrefetch: Int? { state == .idle || state == .running ? prefetch : nil }
}

/// One attempt to run an agent's task for an event.
public struct TaskRun: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        case running, succeeded, failed
        case timedOut = "timed_out"
        case skipped, cancelled, lost

        public var isFinished: Bool { self != .running }
    }
    public var runID: UUID
    public var agentID: String
    public var agentVersion: String
    public var eventID: String
    public var eventType: String
    public var priority: Priority
    public var workerID: String?
    public var instanceID: UUID?
    public var attempt: Int
    public var state: State
    public var eventAt: Date?
    /// When the worker received the event's delivery from the broker (nil for runs recorded before it was kept).
    public var receivedAt: Date?
    public var startedAt: Date
    public var finishedAt: Date?
    /// The handler's result as JSON text.
    public var result: String?
    public var output: String?
    public var stderr: String?
    public var exitStatus: Int?
    public var message: String?
    public var retryAt: Date?
    /// The agent slot the run holds while it runs (from its claim; not stored with the run): its outcome gives it
    /// back by key.
    public var slot: Int?

    public init(runID: UUID, agentID: String, agentVersion: String, eventID: String, eventType: String, priority: Priority,
                workerID: String?, instanceID: UUID?, attempt: Int, state: State, eventAt: Date?, receivedAt: Date? = nil, startedAt: Date = Date(),
                finishedAt: Date? = nil, result: String? = nil, output: String? = nil, stderr: String? = nil,
                exitStatus: Int? = nil, message: String? = nil, retryAt: Date? = nil) {
        self.runID = runID
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.eventID = eventID
        self.eventType = eventType
        self.priority = priority
        self.workerID = workerID
        self.instanceID = instanceID
        self.attempt = attempt
        self.state = state
        self.eventAt = eventAt
        self.receivedAt = receivedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.result = result
        self.output = output
        self.stderr = stderr
        self.exitStatus = exitStatus
        self.message = message
        self.retryAt = retryAt
    }
}

/// What an operator asked an agent to do; every worker obeys it, including those that start later.
public enum DesiredState: String, Sendable, Hashable, CaseIterable {
    case running, paused, stopped
}

/// Workers, instances, task runs and desired agent states in PostgreSQL.
public struct RuntimeStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    // MARK: Workers

    public func register(_ worker: WorkerRecord) async throws {
        let labels = JSON.serialize(.object(JSONObject(uniqueKeysWithValues: worker.labels.map { ($0.key, JSONValue.string($0.value)) })))
        try await execute("register worker \(worker.workerID)", """
            INSERT INTO workers (worker_id, host, pid, version, labels, started_at, heartbeat_at, status)
            VALUES (\(worker.workerID), \(worker.host), \(worker.pid), \(worker.version), \(labels)::jsonb, now(), now(), 'running')
            ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), status = 'running', stopped_at = NULL
            """)
    }

    /// Renews the worker's heartbeat; a worker declared lost meanwhile is running again. Returns false when its row is
    /// gone (forgotten after it was declared lost).
    @discardableResult
    public func heartbeat(workerID: String) async throws -> Bool {
        try await renewHeartbeat(workerID: workerID) != .gone
    }

    /// What a worker's heartbeat found.
    public enum Heartbeat: Sendable, Equatable {
        /// The heartbeat was renewed.
        case renewed
        /// Another worker had declared this one lost (its heartbeats were older than the expiry): its runs were
        /// recorded as lost and their slots freed. The row says `running` again from now on.
        case wasLost
        /// The worker's row is gone (forgotten after it was declared lost or stopped).
        case gone
    }

    /// Renews the worker's heartbeat and says whether it had been declared lost meanwhile.
    public func renewHeartbeat(workerID: String) async throws -> Heartbeat {
        var previous: String?
        // The old status is read under the row's lock, so a concurrent expiry is seen either before (then this
        // answers wasLost) or after (then it waits for this heartbeat and finds it fresh).
        try await query("heartbeat of \(workerID)", """
            UPDATE workers w SET heartbeat_at = now(), status = CASE WHEN w.status = 'lost' THEN 'running' ELSE w.status END
            FROM (SELECT worker_id, status FROM workers WHERE worker_id = \(workerID) FOR UPDATE) old
            WHERE w.worker_id = old.worker_id RETURNING old.status::text
            """) { row in previous = try row.decode(String.self) }
        switch previous {
        case nil: return .gone
        case "lost"?: return .wasLost
        default: return .renewed
        }
    }

    public func markWorker(_ workerID: String, status: String) async throws {
        try await execute("mark worker \(workerID) \(status)", """
            UPDATE workers SET status = \(status), stopped_at = CASE WHEN \(status) IN ('stopped', 'lost') THEN now() ELSE NULL END
            WHERE worker_id = \(workerID)
            """)
        if status == "stopped" {
            try await execute("free the slots of \(workerID)", """
                UPDATE agent_slots SET run_id = NULL, worker_id = NULL, taken_at = NULL WHERE worker_id = \(workerID)
                """)
            try await execute("stop the instances of \(workerID)", """
                UPDATE agent_instances SET state = 'stopped', current_task = NULL, running_tasks = 0, updated_at = now()
                WHERE worker_id = \(workerID)
                """)
        }
    }

    /// Forgets workers that stopped or were declared lost more than `retention` ago, with their instance rows (their
    /// runs stay, naming them). Without it every restart of every worker would leave a row behind for good, and
    /// `agentry workers`, the status page and the claim statement's liveness check would read them all. Returns how
    /// many went.
    @discardableResult
    public func pruneWorkers(olderThan retention: Duration) async throws -> Int {
        var pruned = 0
        try await query("forget workers stopped over \(retention) ago", """
            DELETE FROM workers
            WHERE status IN ('stopped', 'lost') AND stopped_at < now() - make_interval(secs => \(retention.inSeconds))
            RETURNING worker_id
            """) { _ in pruned += 1 }
        return pruned
    }

    /// Registers a status hub with clients, until `expiry` from now: while any registration is current, changes to
    /// runs, instances, locks and agents notify `agentry_status` (migration 0016); otherwise they notify nobody.
    public func watchStatus(hubID: String, expiry: Duration) async throws {
        try await execute("register status hub \(hubID)", """
            INSERT INTO status_watchers (hub_id, expires_at) VALUES (\(hubID), now() + make_interval(secs => \(expiry.inSeconds)))
            ON CONFLICT (hub_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
            """)
    }

    /// Ends a status hub's registration (and forgets registrations that expired long ago).
    public func unwatchStatus(hubID: String) async throws {
        try await execute("unregister status hub \(hubID)", """
            DELETE FROM status_watchers WHERE hub_id = \(hubID) OR expires_at < now() - interval '1 hour'
            """)
    }

    /// What one ``pruneHistory(olderThan:batchSize:maxBatches:)`` call deleted.
    public struct PrunedHistory: Sendable, Hashable {
        /// `event_log` rows (events whose timestamp is older than the retention).
        public var events = 0
        /// `task_runs` rows (runs that started before the retention and are not running).
        public var runs = 0
        /// False when the call stopped at `maxBatches` with more left, or found another process pruning.
        public var complete = true
        public init() {}
    }

    /// Deletes the history older than `retention`: `event_log` rows by the event's `timestamp`, and `task_runs` rows
    /// that started before it and are not running (a run still going, or handed over, stays whatever its age).
    ///
    /// It deletes in statements of at most `batchSize` rows, each its own transaction, so that no lock is held long
    /// and the hot path's inserts go on meanwhile; at most `maxBatches` statements per table per call. Each statement
    /// first takes a transaction-level advisory lock without waiting: when another worker is pruning, this call
    /// deletes nothing and returns `complete == false`, rather than competing for the same rows. A cancelled task
    /// stops before its next statement (what was deleted stays deleted).
    ///
    /// Both tables are read by index (`"timestamp"`, `started_at`). Once a run's row is gone, a redelivery of its event
    /// (a worker that died between recording the outcome and acking it, say) would run it again: keep the retention
    /// far longer than a message can wait unacked.
    public func pruneHistory(olderThan retention: Duration, batchSize: Int = 5_000, maxBatches: Int = 100) async throws -> PrunedHistory {
        precondition(batchSize > 0 && maxBatches > 0, "batchSize and maxBatches must be positive")
        var pruned = PrunedHistory()
        let seconds = retention.inSeconds
        let tables: [(table: String, key: String, predicate: String, counter: WritableKeyPath<PrunedHistory, Int>)] = [
            ("event_log", "id", "x.\"timestamp\" < now() - make_interval(secs => $1)", \.events),
            ("task_runs", "run_id", "x.started_at < now() - make_interval(secs => $1) AND x.state <> 'running'", \.runs),
        ]
        for (table, key, predicate, counter) in tables {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(seconds)
            bindings.append(batchSize)
            let statement = PostgresQuery(unsafeSQL: """
                WITH gate AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext('agentry.history-prune')) AS free),
                     doomed AS (SELECT x.\(key) FROM \(table) x, gate WHERE gate.free AND \(predicate) LIMIT $2),
                     deleted AS (DELETE FROM \(table) WHERE \(key) IN (SELECT \(key) FROM doomed) RETURNING 1)
                SELECT (SELECT free FROM gate), count(*)::int8 FROM deleted
                """, binds: bindings)
            var batches = 0
            while true {
                if Task.isCancelled {
                    pruned.complete = false
                    return pruned
                }
                var free = true
                var deleted = 0
                try await query("delete \(table) rows older than \(retention)", statement) { row in
                    let (gate, count) = try row.decode((Bool, Int64).self)
                    free = gate
                    deleted = Int(count)
                }
                pruned[keyPath: counter] += deleted
                if !free {
                    pruned.complete = false
                    return pruned
                }
                if deleted < batchSize { break }
                batches += 1
                if batches == maxBatches {
                    pruned.complete = false
                    break
                }
            }
        }
        return pruned
    }

    /// The tables that the claim and outcome statements look up by index.
    public static let runTables = ["task_runs", "agent_slots"]

    /// Runs ANALYZE on the run tables that changed by more than `growth` times their size (and by at least
    /// `minimumChanges` rows) since their last ANALYZE; returns those tables.
    ///
    /// The claim and outcome statements are prepared, and PostgreSQL keeps a prepared statement's generic plan until
    /// the statistics of a table in it change. On a new database that plan is made while `task_runs` is empty, so the
    /// exactly-once checks scan the table instead of using its index, and a burst of events slows down as the table
    /// grows (measured: 40-50 ms per claim at 30,000 rows instead of under 1 ms) until autovacuum's own ANALYZE, up to
    /// a minute or more later. Workers call this every few seconds; it reads two rows of statistics when nothing is due.
    @discardableResult
    public func refreshStatistics(minimumChanges: Int = 1_000, growth: Double = 1) async throws -> [String] {
        var due: [String] = []
        try await query("read the run tables' statistics", """
            SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.schemaname = current_schema() AND s.relname = ANY(\(Self.runTables))
              AND s.n_mod_since_analyze >= greatest(\(Double(minimumChanges)), \(growth) * greatest(c.reltuples, 0))
            """) { row in due.append(try row.decode(String.self)) }
        let tables = Self.runTables.filter(due.contains)
        guard !tables.isEmpty else { return [] }
        // The names come from `runTables`, not from the database's answer.
        try await execute("analyze \(tables.joined(separator: ", "))",
                          PostgresQuery(unsafeSQL: "ANALYZE (SKIP_LOCKED) " + tables.joined(separator: ", ")))
        return tables
    }

    /// A run whose delivery was acked early (handed over) and whose worker was declared lost: its event must be
    /// published again to the agent's queue.
    public struct OrphanedRun: Sendable {
        public var runID: UUID
        public var agentID: String
        /// The event envelope as JSON.
        public var event: String
    }

    /// Declares workers whose heartbeat is older than `expiry` lost: their instances go to `error`, their slots are
    /// freed, their running runs go to `lost`. Returns the workers declared lost now.
    ///
    /// Runs that were handed over (their deliveries acked, their events kept with them) need their events published
    /// again: that happens after this transaction commits, never inside it (a transaction must not wait for the
    /// broker), through ``republishDue(limit:)`` and ``markRepublished(_:)``.
    public func expireWorkers(expiry: Duration) async throws -> [String] {
        let seconds = expiry.inSeconds
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection -> [String] in
                var lost: [String] = []
                for try await id in try await connection.queryAll("""
                    UPDATE workers SET status = 'lost', stopped_at = now()
                    WHERE status IN ('running', 'stopping') AND heartbeat_at < now() - make_interval(secs => \(seconds))
                    RETURNING worker_id
                    """, logger: logger).decode(String.self) { lost.append(id) }
                guard !lost.isEmpty else { return [] }
                try await connection.queryAll("""
                    UPDATE agent_instances SET state = 'error', error = 'worker ' || worker_id || ' stopped sending heartbeats',
                           current_task = NULL, running_tasks = 0, updated_at = now()
                    WHERE worker_id = ANY(\(lost)) AND state <> 'stopped'
                    """, logger: logger)
                try await connection.queryAll("""
                    UPDATE agent_slots SET run_id = NULL, worker_id = NULL, taken_at = NULL WHERE worker_id = ANY(\(lost))
                    """, logger: logger)
                try await connection.queryAll("""
                    UPDATE task_runs SET state = 'lost', finished_at = now(),
                           message = 'worker ' || worker_id || ' stopped sending heartbeats; the event goes to another worker'
                    WHERE worker_id = ANY(\(lost)) AND state = 'running'
                    """, logger: logger)
                return lost
            }
        } catch {
            throw StoreError(.query, "cannot expire silent workers", cause: error)
        }
    }

    /// Handed-over runs declared lost whose events were not published again yet, oldest first.
    public func republishDue(limit: Int = 100) async throws -> [OrphanedRun] {
        var orphans: [OrphanedRun] = []
        try await query("list handed-over runs to publish again", """
            SELECT run_id, agent_id, event::text FROM task_runs
            WHERE state = 'lost' AND event IS NOT NULL AND republished_at IS NULL
            ORDER BY finished_at LIMIT \(limit)
            """) { row in
            let (runID, agentID, event) = try row.decode((UUID, String, String).self)
            orphans.append(OrphanedRun(runID: runID, agentID: agentID, event: event))
        }
        return orphans
    }

    /// Records that a lost run's event was published again (the broker confirmed it).
    public func markRepublished(_ runID: UUID) async throws {
        try await execute("record the republish of run \(runID)", """
            UPDATE task_runs SET republished_at = now() WHERE run_id = \(runID) AND republished_at IS NULL
            """)
    }

    /// Cancels the retry a failed run waits for: when the retry comes back, it is acked without running. Returns
    /// false when the run is not waiting for a retry (or a later attempt already started).
    public func cancelRetry(_ runID: UUID, by who: String) async throws -> Bool {
        var updated = false
        try await query("cancel the retry of run \(runID)", writes: true, """
            UPDATE task_runs r SET retry_cancelled = true, message = COALESCE(r.message || '; ', '') || 'retry cancelled by ' || \(who)
            WHERE r.run_id = \(runID) AND r.state IN ('failed', 'timed_out') AND r.retry_at IS NOT NULL AND NOT r.retry_cancelled
              AND NOT EXISTS (SELECT 1 FROM task_runs later WHERE later.agent_id = r.agent_id AND later.event_id = r.event_id
                                                           AND later.attempt > r.attempt)
            RETURNING run_id
            """) { _ in updated = true }
        return updated
    }

    /// Hands a running run over: keeps its event, so that its delivery can be acked before it ends.
    public func handOver(_ runID: UUID, event: String) async throws -> Bool {
        var updated = false
        try await query("hand over run \(runID)", writes: true, """
            UPDATE task_runs SET event = \(event)::jsonb, handed_over_at = now() WHERE run_id = \(runID) AND state = 'running'
            RETURNING run_id
            """) { _ in updated = true }
        return updated
    }

    public func workers() async throws -> [WorkerRecord] {
        var result: [WorkerRecord] = []
        try await query("list workers", """
            SELECT worker_id, host, pid, version, labels::text, started_at, heartbeat_at, status,
                   (status IN ('running', 'stopping') AND heartbeat_at > now() - interval '15 seconds')
            FROM workers ORDER BY started_at DESC
            """) { row in
            let (id, host, pid, version, labels, started, heartbeat, status, alive) =
                try row.decode((String, String, Int, String, String, Date, Date, String, Bool).self)
            var labelMap: [String: String] = [:]
            if case .object(let object)? = try? JSON.parse(Array(labels.utf8)) {
                for (key, value) in object { if case .string(let s) = value { labelMap[key] = s } }
            }
            result.append(WorkerRecord(workerID: id, host: host, pid: pid, version: version, labels: labelMap,
                                       startedAt: started, heartbeatAt: heartbeat, status: status, alive: alive))
        }
        return result
    }

    // MARK: Instances

    /// Creates or updates the worker's instance of an agent; returns its id.
    public func upsertInstance(workerID: String, agentID: String, version: String, state: InstanceRecord.State) async throws -> UUID {
        var id: UUID?
        try await query("instance of \(agentID) on \(workerID)", writes: true, """
            INSERT INTO agent_instances (agent_id, version, worker_id, state)
            VALUES (\(agentID), \(version), \(workerID), \(state.rawValue))
            ON CONFLICT (worker_id, agent_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state,
                error = NULL, updated_at = now(),
                started_at = CASE WHEN agent_instances.state IN ('stopped', 'error') THEN now() ELSE agent_instances.started_at END
            RETURNING instance_id
            """) { row in id = try row.decode(UUID.self) }
        guard let id else { throw StoreError(.query, "no instance row returned for \(agentID) on \(workerID)") }
        return id
    }

    public func updateInstance(_ instanceID: UUID, state: InstanceRecord.State, currentTask: UUID?, runningTasks: Int, prefetch: Int? = nil,
                               error: String? = nil) async throws {
        try await execute("update instance \(instanceID)", """
            UPDATE agent_instances SET state = \(state.rawValue), current_task = \(currentTask), running_tasks = \(runningTasks),
                   prefetch = \(prefetch),
                   error = \(error), updated_at = now()
            WHERE instance_id = \(instanceID)
            """)
    }

    public func instances(agentID: String? = nil) async throws -> [InstanceRecord] {
        var result: [InstanceRecord] = []
        try await query("list instances", """
            SELECT instance_id, agent_id, version, worker_id, state, current_task, running_tasks, prefetch, started_at, updated_at, error
            FROM agent_instances WHERE (\(agentID)::text IS NULL OR agent_id = \(agentID))
            ORDER BY agent_id, started_at
            """) { row in
            let (id, agent, version, worker, state, task, running, prefetch, started, updated, error) =
                try row.decode((UUID, String, String, String, String, UUID?, Int, Int?, Date, Date, String?).self)
            result.append(InstanceRecord(instanceID: id, agentID: agent, version: version, workerID: worker,
                                         state: InstanceRecord.State(rawValue: state) ?? .error, currentTask: task,
                                         runningTasks: running, prefetch: prefetch, startedAt: started, updatedAt: updated, error: error))
        }
        return result
    }

    /// How many instances of each agent are taking events right now: consuming (idle or running) on a worker that is
    /// running and whose heartbeat is younger than `expiry`. Workers divide an agent's `max_parallel_tasks` among its
    /// instances by this count (see `AgentRunner.prefetch`). Agents with no such instance are absent.
    public func consumingInstances(agentID: String? = nil, expiry: Duration) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        try await query("count consuming instances", """
            SELECT i.agent_id, count(*)::int8 FROM agent_instances i JOIN workers w ON w.worker_id = i.worker_id
            WHERE i.state IN ('idle', 'running') AND w.status = 'running'
              AND w.heartbeat_at > now() - make_interval(secs => \(expiry.inSeconds))
              AND (\(agentID)::text IS NULL OR i.agent_id = \(agentID))
            GROUP BY i.agent_id
            """) { row in
            let (agent, count) = try row.decode((String, Int).self)
            counts[agent] = count
        }
        return counts
    }

    // MARK: Desired states

    /// Sets what an agent should do. Throws `notFound` when the agent was never published.
    public func setDesiredState(_ state: DesiredState, agentID: String) async throws {
        var found = false
        try await query("set \(agentID) \(state.rawValue)", writes: true, """
            UPDATE agents SET desired_state = \(state.rawValue), updated_at = now() WHERE agent_id = \(agentID) RETURNING agent_id
            """) { _ in found = true }
        if !found {
            throw StoreError(.notFound, "agent '\(agentID)' is not published; publish it with `agentry agents publish \(agentID)` first")
        }
    }

    /// A published (not retired) agent as workers see it.
    public struct ActiveAgent: Sendable, Hashable {
        public var agentID: String
        public var version: String
        public var desired: DesiredState
        /// The routing patterns its queue is bound to.
        public var patterns: [String]
        /// Retired: nothing new reaches its queue; workers drain what is left, then stop serving it.
        public var retired: Bool
    }

    /// Every published agent (retired ones included) with its active version, desired state and bound patterns.
    public func activeAgents() async throws -> [ActiveAgent] {
        var result: [ActiveAgent] = []
        try await query("active agents", """
            SELECT agent_id, active_version, desired_state, bound_patterns::text, status = 'retired' FROM agents
            WHERE active_version IS NOT NULL ORDER BY agent_id
            """) { row in
            let (agent, version, desired, patterns, retired) = try row.decode((String, String, String, String, Bool).self)
            var list: [String] = []
            if case .array(let items)? = try? JSON.parse(Array(patterns.utf8)) { list = items.compactMap(\.stringValue) }
            result.append(ActiveAgent(agentID: agent, version: version, desired: DesiredState(rawValue: desired) ?? .running,
                                      patterns: list, retired: retired))
        }
        return result
    }

    // MARK: Runs

    /// What happened when a worker tried to claim a run.
    public enum Claim: Sendable, Equatable {
        /// The run is recorded as running, in the agent's slot `slot`: go ahead (and give the slot back with
        /// ``RuntimeStore/finish(batch:)``).
        case claimed(slot: Int)
        /// The agent already runs `max_parallel_tasks` tasks across all workers.
        case busy
        /// A run of this agent for this event already succeeded (or was skipped): ack without running.
        case alreadyCompleted(state: TaskRun.State)
        /// A live worker is running this event for this agent right now (a redelivery while it still runs).
        case runningElsewhere(runID: UUID, workerID: String)
        /// This run id is recorded already and has ended (`state`): an earlier try of this claim was written but its
        /// answer was lost, and the worker was declared lost before this try. Claim again under a new run id.
        case ended(state: TaskRun.State)
    }

    /// Makes sure the agent has `count` run slots (more are kept when the limit was lowered; only the first
    /// `max_parallel_tasks` are used).
    public func ensureSlots(agentID: String, count: Int) async throws {
        try await execute("create run slots of \(agentID)", """
            INSERT INTO agent_slots (agent_id, slot) SELECT \(agentID), generate_series(0, \(max(1, count)) - 1)
            ON CONFLICT DO NOTHING
            """)
    }

    /// Claims runs of one agent, many in one statement. For each run: unless its event is completed for this agent,
    /// or a live worker runs it right now, it takes one of the agent's first `maxParallel` slots that is free (or
    /// held by a worker whose heartbeat expired), with `FOR UPDATE SKIP LOCKED`, and is recorded as running; the
    /// free slots go to the runs in the order given, and a run that finds none is `busy`. Of two runs for the same
    /// event in one batch, only the first may take a slot. The slots make the limit hold across every worker while
    /// claims never wait for each other. A run that is running already with its slot (a claim tried again after its
    /// connection closed with the answer on the way) comes back as claimed with that slot, so a retry is safe; one that
    /// was recorded and has ended meanwhile (its worker declared lost in between) comes back as `ended`. Call
    /// ``ensureSlots(agentID:count:)`` first.
    ///
    /// `announcing` pairs runs with their `agent.task.started` events: the event of a run that is claimed is written to
    /// `event_log` by the same statement (the worker then publishes it past the log's queue, see
    /// `EventBus.publishLogged(_:)`).
    public func claim(batch runs: [TaskRun], announcing: [(runID: UUID, event: Event)] = [], maxParallel: Int,
                      workerExpiry: Duration) async throws -> [Claim] {
        guard let first = runs.first else { return [] }
        let statement = ClaimStatement(runs: runs, announcements: EventColumns(announcing: announcing), agentID: first.agentID,
                                       workerID: first.workerID ?? "", instanceID: first.instanceID, maxParallel: maxParallel,
                                       expirySeconds: workerExpiry.inSeconds)
        let agentID = first.agentID
        var claims: [UUID: Claim] = [:]
        do {
            for (runIDs, completed, otherRuns, otherWorkers, slots, ended) in try await database.execute(statement, logger: logger) {
                let count = min(runIDs.count, completed.count, otherRuns.count, otherWorkers.count, slots.count, ended.count)
                for index in 0..<count {
                    let runID = runIDs[index]
                    if !completed[index].isEmpty {
                        claims[runID] = .alreadyCompleted(state: TaskRun.State(rawValue: completed[index]) ?? .succeeded)
                    } else if otherRuns[index] != runID {
                        claims[runID] = .runningElsewhere(runID: otherRuns[index], workerID: otherWorkers[index].isEmpty ? "?" : otherWorkers[index])
                    } else if !ended[index].isEmpty {
                        claims[runID] = .ended(state: TaskRun.State(rawValue: ended[index]) ?? .lost)
                    } else {
                        claims[runID] = slots[index] >= 0 ? .claimed(slot: Int(slots[index])) : .busy
                    }
                }
            }
        } catch {
            throw StoreError(.query, "cannot claim \(runs.count) runs of \(agentID)", cause: error)
        }
        return runs.map { claims[$0.runID] ?? .busy }
    }

    /// Records a run that did not run because no trigger's filters matched (once per agent and event).
    public func recordSkipped(_ run: TaskRun) async throws {
        try await execute("record a skipped run of \(run.agentID)", """
            INSERT INTO task_runs (run_id, agent_id, agent_version, event_id, event_type, priority, worker_id, instance_id,
                                   attempt, state, event_at, received_at, started_at, finished_at, message)
            VALUES (\(run.runID), \(run.agentID), \(run.agentVersion), \(run.eventID), \(run.eventType), \(run.priority.rawValue),
                    \(run.workerID), \(run.instanceID), \(run.attempt), 'skipped', \(run.eventAt), \(run.receivedAt), now(), now(), \(run.message))
            ON CONFLICT DO NOTHING
            """)
    }

    /// The outcome of a run, written when it ends.
    public struct Outcome: Sendable {
        public var state: TaskRun.State
        public var result: String?
        public var output: String?
        public var stderr: String?
        public var exitStatus: Int?
        public var message: String?
        public var retryAt: Date?
        /// The event that announces this outcome (`agent.task.completed`), written to `event_log` with it when the run
        /// is recorded (and not when it is refused).
        public var announcement: Event?

        public init(state: TaskRun.State, result: String? = nil, output: String? = nil, stderr: String? = nil,
                    exitStatus: Int? = nil, message: String? = nil, retryAt: Date? = nil, announcement: Event? = nil) {
            self.announcement = announcement
            self.state = state
            self.result = result
            self.output = output
            self.stderr = stderr
            self.exitStatus = exitStatus
            self.message = message
            self.retryAt = retryAt
        }
    }

    /// Records how a running run ended. Returns false when another run completed the event first (its event ran
    /// again after this run's worker was declared lost, say): its outcome is then recorded as `cancelled` with the
    /// reason, and the caller must not publish it as the event's completion. A run whose worker was declared lost
    /// while it still ran (its heartbeats could not reach the database) is recorded all the same.
    /// The run's slot is given back in the same statement.
    @discardableResult
    public func finish(_ runID: UUID, agentID: String, slot: Int? = nil, _ outcome: Outcome) async throws -> Bool {
        do {
            return try await finish(batch: [(runID, agentID, slot, outcome)]).contains(runID)
        } catch let error as StoreError where error.message.contains("SQLSTATE 23505") {
            _ = try await finish(batch: [(runID, agentID, slot, Outcome(
                state: .cancelled, output: outcome.output, stderr: outcome.stderr,
                message: "another run completed this event for this agent first"))])
            return false
        }
    }

    /// Records the outcomes of many runs in one statement (one commit, one WAL flush), giving their slots back.
    /// Returns the ids of the runs that were still running (or declared lost while they ran) and are now recorded, or
    /// were recorded in that very state already (by a try whose commit was not confirmed, see
    /// ``Database/write(_:logger:)``); the others had been recorded otherwise (cancelled, say). Throws when the statement fails
    /// as a whole (a second success for one event, say); record such a batch run by run with ``finish(_:agentID:slot:_:)``.
    /// A run's `slot` (from its claim) gives the slot back by its key; without it the slot is found by the run's id.
    public func finish(batch: [(runID: UUID, agentID: String, slot: Int?, outcome: Outcome)]) async throws -> Set<UUID> {
        guard !batch.isEmpty else { return [] }
        var recorded = Set<UUID>()
        do {
            for runIDs in try await database.execute(FinishStatement(batch: batch), logger: logger) { recorded.formUnion(runIDs) }
        } catch {
            throw StoreError(.query, "cannot record \(batch.count) run outcomes", cause: error)
        }
        return recorded
    }

    public func run(id: UUID) async throws -> TaskRun? {
        try await runs(where: "run_id = $1", binds: [.uuid(id)], limit: 1).first
    }

    /// Runs, newest first, optionally of one agent, event, or state.
    public func runs(agentID: String? = nil, eventID: String? = nil, state: TaskRun.State? = nil, limit: Int = 50) async throws -> [TaskRun] {
        var conditions: [String] = []
        var binds: [Bind] = []
        if let agentID { binds.append(.text(agentID)); conditions.append("agent_id = $\(binds.count)") }
        if let eventID { binds.append(.text(eventID)); conditions.append("event_id = $\(binds.count)::text") }
        if let state { binds.append(.text(state.rawValue)); conditions.append("state = $\(binds.count)") }
        return try await runs(where: conditions.isEmpty ? "true" : conditions.joined(separator: " AND "), binds: binds, limit: limit)
    }

    enum Bind { case text(String), uuid(UUID) }

    private func runs(where condition: String, binds: [Bind], limit: Int) async throws -> [TaskRun] {
        var bindings = PostgresBindings()
        for bind in binds {
            switch bind {
            case .text(let s): bindings.append(s)
            case .uuid(let u): bindings.append(u)
            }
        }
        bindings.append(max(1, min(limit, 10_000)))
        let sql = """
            SELECT run_id, agent_id, agent_version, event_id::text, event_type, priority, worker_id, instance_id, attempt, state,
                   event_at, started_at, finished_at, result::text, output, stderr, exit_status, message, retry_at, received_at
            FROM task_runs WHERE \(condition) ORDER BY started_at DESC, run_id DESC LIMIT $\(binds.count + 1)
            """
        var result: [TaskRun] = []
        do {
            let rows = try await database.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
            for try await row in rows {
                let (runID, agentID, version, eventID, eventType, priority, workerID, instanceID, attempt, state) =
                    try row.decode((UUID, String, String, String, String, Int, String?, UUID?, Int, String).self)
                let columns = row.makeRandomAccess()
                result.append(TaskRun(
                    runID: runID, agentID: agentID, agentVersion: version, eventID: eventID, eventType: eventType,
                    priority: Priority(rawValue: priority) ?? .low, workerID: workerID, instanceID: instanceID, attempt: attempt,
                    state: TaskRun.State(rawValue: state) ?? .failed,
                    eventAt: try columns[10].decode(Date?.self), receivedAt: try columns[19].decode(Date?.self),
                    startedAt: try columns[11].decode(Date.self),
                    finishedAt: try columns[12].decode(Date?.self), result: try columns[13].decode(String?.self),
                    output: try columns[14].decode(String?.self), stderr: try columns[15].decode(String?.self),
                    exitStatus: try columns[16].decode(Int?.self), message: try columns[17].decode(String?.self),
                    retryAt: try columns[18].decode(Date?.self)))
            }
        } catch {
            throw StoreError(.query, "cannot read task runs", cause: error)
        }
        return result
    }

    // MARK: Helpers

    /// A write, answered once committed (``Database/write(_:logger:)``).
    private func execute(_ what: String, _ query: PostgresQuery) async throws {
        do {
            try await database.write(query, logger: logger)
        } catch {
            throw StoreError(.query, "cannot \(what)", cause: error)
        }
    }

    /// A query, each of its rows given to `each`; a write (`writes`) is answered once committed (``Database/write(_:logger:)``).
    private func query(_ what: String, writes: Bool = false, _ query: PostgresQuery, _ each: (PostgresRow) throws -> Void) async throws {
        do {
            let rows = writes ? try await database.write(query, logger: logger) : try await database.query(query, logger: logger)
            for try await row in rows {
                try each(row)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.query, "cannot \(what)", cause: error)
        }
    }
}
