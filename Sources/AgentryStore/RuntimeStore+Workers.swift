import AgentryCore
public import Foundation
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
    /// The process's resident memory at its last heartbeat, in bytes (nil before it recorded one).
    public var rssBytes: Int?
    /// The tasks its agent instances run now.
    public var runningTasks: Int
    /// How old its heartbeat was when it was read, by the database's clock (the reader's may differ).
    public var heartbeatAge: Duration
    /// When it stopped or was declared lost.
    public var stoppedAt: Date?

    public init(
        workerID: String, host: String, pid: Int, version: String, labels: [String: String],
        startedAt: Date = Date(), heartbeatAt: Date = Date(), status: String = "running", alive: Bool = true,
        rssBytes: Int? = nil, runningTasks: Int = 0, heartbeatAge: Duration = .zero, stoppedAt: Date? = nil
    ) {
        self.workerID = workerID
        self.host = host
        self.pid = pid
        self.version = version
        self.labels = labels
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.status = status
        self.alive = alive
        self.rssBytes = rssBytes
        self.runningTasks = runningTasks
        self.heartbeatAge = heartbeatAge
        self.stoppedAt = stoppedAt
    }
}

/// Workers: registration, heartbeats, stopping, expiry of silent ones (with the republish of their handed-over runs),
/// and forgetting old ones.
extension RuntimeStore {
    public func register(_ worker: WorkerRecord) async throws {
        let labels = JSON.serialize(.object(JSONObject(uniqueKeysWithValues: worker.labels.map { ($0.key, JSONValue.string($0.value)) })))
        try await execute(
            "register worker \(worker.workerID)",
            """
            INSERT INTO workers (worker_id, host, pid, version, labels, started_at, heartbeat_at, status, rss_bytes)
            VALUES (\(worker.workerID), \(worker.host), \(worker.pid), \(worker.version), \(labels)::jsonb, now(), now(), 'running',
                    \(worker.rssBytes))
            ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), status = 'running', stopped_at = NULL, rss_bytes = EXCLUDED.rss_bytes
            """)
    }

    /// Renews the worker's heartbeat; a worker declared lost meanwhile is running again. Returns false when its row is
    /// gone (forgotten after it was declared lost).
    @discardableResult
    public func heartbeat(workerID: String, rssBytes: Int? = nil) async throws -> Bool {
        try await renewHeartbeat(workerID: workerID, rssBytes: rssBytes) != .gone
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

    /// Renews the worker's heartbeat, with its resident memory when given (else the last one stays), and says whether
    /// it had been declared lost meanwhile.
    public func renewHeartbeat(workerID: String, rssBytes: Int? = nil) async throws -> Heartbeat {
        var previous: String?
        // The old status is read under the row's lock, so a concurrent expiry is seen either before (then this
        // answers wasLost) or after (then it waits for this heartbeat and finds it fresh).
        try await query(
            "heartbeat of \(workerID)",
            """
            UPDATE workers w SET heartbeat_at = now(), status = CASE WHEN w.status = 'lost' THEN 'running' ELSE w.status END,
                   rss_bytes = COALESCE(\(rssBytes), w.rss_bytes)
            FROM (SELECT worker_id, status FROM workers WHERE worker_id = \(workerID) FOR UPDATE) old
            WHERE w.worker_id = old.worker_id RETURNING old.status::text
            """
        ) { row in previous = try row.decode(String.self) }
        switch previous {
        case nil: return .gone
        case "lost"?: return .wasLost
        default: return .renewed
        }
    }

    public func markWorker(_ workerID: String, status: String) async throws {
        try await execute(
            "mark worker \(workerID) \(status)",
            """
            UPDATE workers SET status = \(status), stopped_at = CASE WHEN \(status) IN ('stopped', 'lost') THEN now() ELSE NULL END
            WHERE worker_id = \(workerID)
            """)
        if status == "stopped" {
            try await execute(
                "free the slots of \(workerID)",
                """
                UPDATE agent_slots SET run_id = NULL, worker_id = NULL, taken_at = NULL WHERE worker_id = \(workerID)
                """)
            try await execute(
                "stop the instances of \(workerID)",
                """
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
        try await query(
            "forget workers stopped over \(retention) ago",
            """
            DELETE FROM workers
            WHERE status IN ('stopped', 'lost') AND stopped_at < now() - make_interval(secs => \(retention.inSeconds))
            RETURNING worker_id
            """
        ) { _ in pruned += 1 }
        return pruned
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
                for try await id in try await connection.queryAll(
                    """
                    UPDATE workers SET status = 'lost', stopped_at = now()
                    WHERE status IN ('running', 'stopping') AND heartbeat_at < now() - make_interval(secs => \(seconds))
                    RETURNING worker_id
                    """, logger: logger
                ).decode(String.self) { lost.append(id) }
                guard !lost.isEmpty else { return [] }
                try await connection.queryAll(
                    """
                    UPDATE agent_instances SET state = 'error', error = 'worker ' || worker_id || ' stopped sending heartbeats',
                           current_task = NULL, running_tasks = 0, updated_at = now()
                    WHERE worker_id = ANY(\(lost)) AND state <> 'stopped'
                    """, logger: logger)
                try await connection.queryAll(
                    """
                    UPDATE agent_slots SET run_id = NULL, worker_id = NULL, taken_at = NULL WHERE worker_id = ANY(\(lost))
                    """, logger: logger)
                try await connection.queryAll(
                    """
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
        try await query(
            "list handed-over runs to publish again",
            """
            SELECT run_id, agent_id, event::text FROM task_runs
            WHERE state = 'lost' AND event IS NOT NULL AND republished_at IS NULL
            ORDER BY finished_at LIMIT \(limit)
            """
        ) { row in
            let (runID, agentID, event) = try row.decode((UUID, String, String).self)
            orphans.append(OrphanedRun(runID: runID, agentID: agentID, event: event))
        }
        return orphans
    }

    /// Records that a lost run's event was published again (the broker confirmed it).
    public func markRepublished(_ runID: UUID) async throws {
        try await execute(
            "record the republish of run \(runID)",
            """
            UPDATE task_runs SET republished_at = now() WHERE run_id = \(runID) AND republished_at IS NULL
            """)
    }

    /// Every worker, the live ones first (running or stopping with a recent heartbeat), then the others; newest
    /// first within each.
    public func workers() async throws -> [WorkerRecord] {
        var result: [WorkerRecord] = []
        try await query(
            "list workers",
            """
            SELECT w.worker_id, w.host, w.pid, w.version, w.labels::text, w.started_at, w.heartbeat_at, w.status,
                   (w.status IN ('running', 'stopping') AND w.heartbeat_at > now() - interval '15 seconds') AS alive,
                   w.rss_bytes, COALESCE(i.running, 0)::int8,
                   (extract(epoch FROM now() - w.heartbeat_at) * 1000)::int8, w.stopped_at
            FROM workers w
            LEFT JOIN (SELECT worker_id, sum(running_tasks) AS running FROM agent_instances GROUP BY worker_id) i
                   ON i.worker_id = w.worker_id
            ORDER BY alive DESC, w.started_at DESC
            """
        ) { row in
            let (id, host, pid, version, labels, started, heartbeat, status, alive, rss, running, ageMS, stopped) =
                try row.decode((String, String, Int, String, String, Date, Date, String, Bool, Int?, Int, Int, Date?).self)
            var labelMap: [String: String] = [:]
            for (key, value) in try StoredJSON.object(labels, "the labels of worker \(id)") {
                if case .string(let s) = value { labelMap[key] = s }
            }
            result.append(
                WorkerRecord(
                    workerID: id, host: host, pid: pid, version: version, labels: labelMap,
                    startedAt: started, heartbeatAt: heartbeat, status: status, alive: alive,
                    rssBytes: rss, runningTasks: running, heartbeatAge: .milliseconds(max(0, ageMS)), stoppedAt: stopped))
        }
        return result
    }
}
