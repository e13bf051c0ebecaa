public import Foundation
public import Logging
import PostgresNIO

/// Counts per step of a time window, as the console's charts draw them: events by priority, runs finished by
/// outcome, and lock waits (``StatsStore``).
public struct StatsCounts: Sendable, Hashable {
    /// The first step's start (aligned to the step: a multiple of it since the Unix epoch).
    public var start: Date
    public var step: Int
    /// What was counted ends here (exclusive): the database's clock at the query, to the second. The last step may
    /// go on past it; what happens from here on arrives through the status stream's `stats` messages.
    public var until: Date
    /// Events written to the log per step, by priority level (1 = CRITICAL … 4 = LOW): `count` values each.
    public var events: [Int: [Int]]
    /// Runs that finished per step, by their state at finish (``StatsStore/finishedStates``).
    public var runs: [String: [Int]]
    /// Lock requests whose wait ended per step, how many of those gave up (not `acquired`), their summed and their
    /// longest wait in seconds (nil in a step without waits).
    public var lockWaits: [Int]
    public var lockGaveUp: [Int]
    public var lockWaitSeconds: [Double]
    public var lockWaitMaxSeconds: [Double?]

    public var count: Int { lockWaits.count }

    init(start: Date, step: Int, until: Date, count: Int) {
        self.start = start
        self.step = step
        self.until = until
        events = Dictionary(uniqueKeysWithValues: (1...4).map { ($0, Array(repeating: 0, count: count)) })
        runs = Dictionary(uniqueKeysWithValues: StatsStore.finishedStates.map { ($0, Array(repeating: 0, count: count)) })
        lockWaits = Array(repeating: 0, count: count)
        lockGaveUp = Array(repeating: 0, count: count)
        lockWaitSeconds = Array(repeating: 0, count: count)
        lockWaitMaxSeconds = Array(repeating: nil, count: count)
    }

    /// The start of step `index`.
    public func stepStart(_ index: Int) -> Date { start.addingTimeInterval(Double(index * step)) }
}

/// How long the runs of one agent that finished in a window took (`finished_at - started_at`).
public struct RunDurations: Sendable, Hashable {
    public var agentID: String
    public var runs: Int
    /// Median and 95th percentile (`percentile_cont`), in seconds.
    public var p50Seconds: Double
    public var p95Seconds: Double
}

/// Reads the console's charts from PostgreSQL: `event_log` by `created_at`, `task_runs` by `finished_at`, and
/// `lock_waits` by `ended_at`, each through an index of migration 0028 that covers what is read, in one statement.
/// Rows are put in their step with `date_bin` (timestamp arithmetic; measured on a day of 285,000 events, about
/// twice as fast as `floor(extract(epoch …) / step)`, whose `numeric` arithmetic costs more per row).
///
/// Every time is the database's clock (those columns are all set by it), so steps of the history and the seconds the
/// status stream counts line up whatever the clocks of the hosts that wrote the rows.
public struct StatsStore: Sendable {
    let database: Database
    let logger: Logger

    /// The states a run can finish in.
    public static let finishedStates = ["succeeded", "failed", "timed_out", "skipped", "cancelled", "lost", "rejected", "over_budget"]
    /// The states whose runs ran a handler to its end, whose durations are compared (a skipped run never ran, and a
    /// lost or cancelled one's duration says when it was noticed).
    public static let durationStates = ["succeeded", "failed", "timed_out"]

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// `count` steps of `step` seconds, the last of them holding the database's present second.
    public func counts(step: Int, count: Int) async throws -> StatsCounts {
        precondition(step > 0 && count > 0, "step and count must be positive")
        var rows: [(String, Date, String, Int64, Double?, Double?)] = []
        let finished = Self.finishedStates
        try await database.each(
            "count events, finished runs and lock waits per \(step) s",
            """
            WITH b AS MATERIALIZED (
                SELECT t.until, make_interval(secs => \(step)) AS stride,
                       to_timestamp(floor(date_part('epoch', t.until) / \(step)) * \(step) + \(step) - \(count) * \(step)) AS start
                FROM (SELECT date_trunc('second', now()) AS until) t
            )
            SELECT 'bounds', b.start, '', 0::int8, date_part('epoch', b.until), NULL::float8 FROM b
            UNION ALL
            SELECT 'events', date_bin(b.stride, e.created_at, b.start), e.priority::text, count(*)::int8, 0, 0
            FROM event_log e, b WHERE e.created_at >= b.start AND e.created_at < b.until GROUP BY 2, 3
            UNION ALL
            SELECT 'runs', date_bin(b.stride, r.finished_at, b.start), r.state::text, count(*)::int8, 0, 0
            FROM task_runs r, b WHERE r.finished_at >= b.start AND r.finished_at < b.until AND r.state = ANY(\(finished)::text[])
            GROUP BY 2, 3
            UNION ALL
            SELECT 'locks', date_bin(b.stride, w.ended_at, b.start), '', count(*)::int8, sum(w.waited_seconds), max(w.waited_seconds)
            FROM lock_waits w, b WHERE w.ended_at >= b.start AND w.ended_at < b.until GROUP BY 2
            UNION ALL
            SELECT 'gave_up', date_bin(b.stride, w.ended_at, b.start), '', count(*)::int8, 0, 0
            FROM lock_waits w, b WHERE w.ended_at >= b.start AND w.ended_at < b.until AND w.outcome <> 'acquired' GROUP BY 2
            """, logger: logger
        ) { row in
            rows.append(try row.decode((String, Date, String, Int64, Double?, Double?).self))
        }
        // The bounds come first as written, but UNION ALL promises no order.
        guard let bounds = rows.first(where: { $0.0 == "bounds" }) else {
            throw StoreError(.query, "the statistics' statement returned no bounds")
        }
        var result = StatsCounts(start: bounds.1, step: step, until: Date(timeIntervalSince1970: bounds.4 ?? 0), count: count)
        for (kind, bin, key, n, total, longest) in rows where kind != "bounds" {
            // Bins are whole steps from the start: rounding takes out the floating-point error.
            let i = Int((bin.timeIntervalSince(result.start) / Double(step)).rounded())
            guard i >= 0, i < count else { continue }
            switch kind {
            case "events": if let level = Int(key) { result.events[level]?[i] += Int(n) }
            case "runs": result.runs[key]?[i] += Int(n)
            case "locks":
                result.lockWaits[i] += Int(n)
                result.lockWaitSeconds[i] += total ?? 0
                result.lockWaitMaxSeconds[i] = longest
            case "gave_up": result.lockGaveUp[i] += Int(n)
            default: break
            }
        }
        return result
    }

    /// Median and 95th percentile of the durations of each agent's runs that finished from `start` until `until`
    /// (``durationStates``), by agent id.
    public func durations(from start: Date, until: Date) async throws -> [RunDurations] {
        var result: [RunDurations] = []
        let states = Self.durationStates
        try await database.each(
            "compute run durations per agent",
            """
            SELECT agent_id, count(*)::int8,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)::float8),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)::float8)
            FROM task_runs
            WHERE finished_at >= \(start) AND finished_at < \(until) AND state = ANY(\(states)::text[])
            GROUP BY agent_id ORDER BY agent_id
            """, logger: logger
        ) { row in
            let (agent, runs, p50, p95) = try row.decode((String, Int64, Double, Double).self)
            result.append(RunDurations(agentID: agent, runs: Int(runs), p50Seconds: p50, p95Seconds: p95))
        }
        return result
    }
}
