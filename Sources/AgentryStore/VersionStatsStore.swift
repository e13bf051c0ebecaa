public import Logging
import PostgresNIO

/// How one version of an agent has done: its runs, their outcomes and durations, the feedback they got and the
/// approvals they asked for. Computed by PostgreSQL from `task_runs`, `run_feedback` and `approvals`.
public struct VersionStats: Sendable, Hashable {
    public var agentID: String
    public var version: String
    /// Attempts recorded (a retry is one more; skipped events are not counted).
    public var runs: Int
    public var succeeded: Int
    /// Runs that ended: succeeded, failed, timed out, cancelled, lost or rejected.
    public var finished: Int
    /// Runs that were a retry (attempt > 1).
    public var retries: Int
    /// Mean and 95th percentile (`percentile_cont`) of the finished runs' durations, in seconds.
    public var meanSeconds: Double?
    public var p95Seconds: Double?
    /// Pieces of feedback, the mean of their ratings, how many had a label and how many of those said `wrong`.
    public var feedback: Int
    public var ratingMean: Double?
    public var labelled: Int
    public var wrong: Int
    /// Approvals approved, and decided (approved, rejected or expired).
    public var approved: Int
    public var decided: Int

    /// succeeded / finished; nil before any run finished.
    public var successRatio: Double? { finished > 0 ? Double(succeeded) / Double(finished) : nil }
    /// wrong / labelled; nil before any labelled feedback.
    public var wrongShare: Double? { labelled > 0 ? Double(wrong) / Double(labelled) : nil }
    /// approved / decided; nil before any decision.
    public var approvalRatio: Double? { decided > 0 ? Double(approved) / Double(decided) : nil }
}

/// Per-version statistics of agents (``VersionStats``), in one statement.
public struct VersionStatsStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Every version of one agent that is registered or has runs, feedback or approvals (in no particular order).
    public func stats(agentID: String) async throws -> [VersionStats] {
        try await read(agentID)
    }

    /// The same for every agent.
    public func all() async throws -> [VersionStats] {
        try await read(nil)
    }

    private func read(_ agentID: String?) async throws -> [VersionStats] {
        var result: [VersionStats] = []
        try await database.each(
            "compute the per-version statistics of \(agentID ?? "every agent")",
            """
            WITH run_stats AS (
                SELECT agent_id, agent_version AS version,
                       count(*) FILTER (WHERE state <> 'skipped') AS runs,
                       count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
                       count(*) FILTER (WHERE state IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'rejected')) AS finished,
                       count(*) FILTER (WHERE attempt > 1 AND state <> 'skipped') AS retries,
                       avg(extract(epoch FROM finished_at - started_at)::float8)
                           FILTER (WHERE finished_at IS NOT NULL AND state <> 'skipped') AS mean_s,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)::float8)
                           FILTER (WHERE finished_at IS NOT NULL AND state <> 'skipped') AS p95_s
                FROM task_runs WHERE \(agentID)::text IS NULL OR agent_id = \(agentID)
                GROUP BY 1, 2
            ), feedback_stats AS (
                SELECT agent_id, agent_version AS version, count(*) AS feedback, avg(rating)::float8 AS rating_mean,
                       count(*) FILTER (WHERE label IS NOT NULL) AS labelled, count(*) FILTER (WHERE label = 'wrong') AS wrong
                FROM run_feedback WHERE \(agentID)::text IS NULL OR agent_id = \(agentID)
                GROUP BY 1, 2
            ), approval_stats AS (
                SELECT agent_id, agent_version AS version, count(*) FILTER (WHERE state = 'approved') AS approved,
                       count(*) FILTER (WHERE state IN ('approved', 'rejected', 'expired')) AS decided
                FROM approvals WHERE \(agentID)::text IS NULL OR agent_id = \(agentID)
                GROUP BY 1, 2
            ), versions AS (
                SELECT agent_id, version FROM agent_registry WHERE \(agentID)::text IS NULL OR agent_id = \(agentID)
                UNION SELECT agent_id, version FROM run_stats
                UNION SELECT agent_id, version FROM feedback_stats
                UNION SELECT agent_id, version FROM approval_stats
            )
            SELECT v.agent_id, v.version, coalesce(r.runs, 0)::int8, coalesce(r.succeeded, 0)::int8, coalesce(r.finished, 0)::int8,
                   coalesce(r.retries, 0)::int8, r.mean_s, r.p95_s, coalesce(f.feedback, 0)::int8, f.rating_mean,
                   coalesce(f.labelled, 0)::int8, coalesce(f.wrong, 0)::int8, coalesce(a.approved, 0)::int8, coalesce(a.decided, 0)::int8
            FROM versions v
            LEFT JOIN run_stats r USING (agent_id, version)
            LEFT JOIN feedback_stats f USING (agent_id, version)
            LEFT JOIN approval_stats a USING (agent_id, version)
            """, logger: logger
        ) { row in
            let (agent, version, runs, succeeded, finished, retries, mean, p95, feedback, rating, labelled, wrong, approved, decided) =
                try row.decode((String, String, Int64, Int64, Int64, Int64, Double?, Double?, Int64, Double?, Int64, Int64, Int64, Int64).self)
            result.append(
                VersionStats(
                    agentID: agent, version: version, runs: Int(runs), succeeded: Int(succeeded), finished: Int(finished),
                    retries: Int(retries), meanSeconds: mean, p95Seconds: p95, feedback: Int(feedback), ratingMean: rating,
                    labelled: Int(labelled), wrong: Int(wrong), approved: Int(approved), decided: Int(decided)))
        }
        return result
    }
}

extension RuntimeStore {
    /// The per-version statistics of the same database.
    public var versionStats: VersionStatsStore { VersionStatsStore(database: database, logger: logger) }
}
