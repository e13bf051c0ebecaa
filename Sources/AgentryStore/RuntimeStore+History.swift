import AgentryCore
import Foundation
import PostgresNIO

/// The history's retention (`event_log` and `task_runs` rows past it deleted in batches) and the run tables'
/// statistics.
extension RuntimeStore {
    /// What one ``pruneHistory(olderThan:batchSize:maxBatches:)`` call deleted.
    public struct PrunedHistory: Sendable, Hashable {
        /// `event_log` rows (events whose timestamp is older than the retention).
        public var events = 0
        /// `task_runs` rows (runs that started before the retention and are not running).
        public var runs = 0
        /// `lock_waits` rows (waits that ended before the retention).
        public var lockWaits = 0
        /// False when the call stopped at `maxBatches` with more left, or found another process pruning.
        public var complete = true
        public init() {}
    }

    /// Deletes the history older than `retention`: `event_log` rows by the event's `timestamp`, `task_runs` rows
    /// that started before it and are not running (a run still going, or handed over, stays whatever its age), and
    /// `lock_waits` rows by when the wait ended.
    ///
    /// It deletes in statements of at most `batchSize` rows, each its own transaction, so that no lock is held long
    /// and the hot path's inserts go on meanwhile; at most `maxBatches` statements per table per call. Each statement
    /// first takes a transaction-level advisory lock without waiting: when another worker is pruning, this call
    /// deletes nothing and returns `complete == false`, rather than competing for the same rows. A cancelled task
    /// stops before its next statement (what was deleted stays deleted).
    ///
    /// The tables are read by index (`"timestamp"`, `started_at`, `ended_at`). Once a run's row is gone, a redelivery of its event
    /// (a worker that died between recording the outcome and acking it, say) would run it again: keep the retention
    /// far longer than a message can wait unacked.
    public func pruneHistory(olderThan retention: Duration, batchSize: Int = 5_000, maxBatches: Int = 100) async throws -> PrunedHistory {
        precondition(batchSize > 0 && maxBatches > 0, "batchSize and maxBatches must be positive")
        var pruned = PrunedHistory()
        let seconds = retention.inSeconds
        let tables: [(table: String, key: String, predicate: String, counter: WritableKeyPath<PrunedHistory, Int>)] = [
            ("event_log", "id", "x.\"timestamp\" < now() - make_interval(secs => $1)", \.events),
            ("task_runs", "run_id", "x.started_at < now() - make_interval(secs => $1) AND x.state <> 'running'", \.runs),
            ("lock_waits", "id", "x.ended_at < now() - make_interval(secs => $1)", \.lockWaits),
        ]
        for (table, key, predicate, counter) in tables {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(seconds)
            bindings.append(batchSize)
            let statement = PostgresQuery(
                unsafeSQL: """
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
        try await query(
            "read the run tables' statistics",
            """
            SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.schemaname = current_schema() AND s.relname = ANY(\(Self.runTables))
              AND s.n_mod_since_analyze >= greatest(\(Double(minimumChanges)), \(growth) * greatest(c.reltuples, 0))
            """
        ) { row in due.append(try row.decode(String.self)) }
        let tables = Self.runTables.filter(due.contains)
        guard !tables.isEmpty else { return [] }
        // The names come from `runTables`, not from the database's answer.
        try await execute(
            "analyze \(tables.joined(separator: ", "))",
            PostgresQuery(unsafeSQL: "ANALYZE (SKIP_LOCKED) " + tables.joined(separator: ", ")))
        return tables
    }
}
