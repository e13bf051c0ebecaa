import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// A cancelling event's mark: the agent's runs whose events are not newer than it, and whose kept values equal its
/// `match`, are cancelled.
public struct CancelMark: Sendable, Hashable {
    /// The cancelling event's id.
    public var eventID: String
    /// `event <id> (alert.resolved, payload.device_id = tv-1)`: what the cancelled runs' messages say after
    /// "cancelled by".
    public var description: String

    public init(eventID: String, description: String) {
        self.eventID = eventID
        self.description = description
    }
}

/// What a cancelling event found of the agent's runs.
public struct CancelSweep: Sendable, Hashable {
    /// A run that was cancelled in PostgreSQL (it was waiting, or waiting for its retry), with where it sits in a run
    /// tree: a parent waiting for it is told by the caller.
    public struct Cancelled: Sendable, Hashable {
        public var runID: UUID
        public var eventID: String
        public var parentRunID: UUID?
        /// The state it was in: `waiting`, `awaiting_approval`, `failed` (waiting for its retry), …
        public var previousState: String
    }

    public var cancelled: [Cancelled] = []
    /// Runs running now: their workers stop them (see `WorkerCommand.cancelByEvent`).
    public var running: [UUID] = []

    public init(cancelled: [Cancelled] = [], running: [UUID] = []) {
        self.cancelled = cancelled
        self.running = running
    }
}

/// Cancel on event (`cancel_on` in a definition, see ``AgentryCore/CancelOn``): the values a run of such an agent
/// compares, the cancelling events' marks, and the cancellation of the runs they match.
///
/// Nothing escapes a cancelling event, whichever comes first, because each side writes, has its write committed,
/// and only then reads what the other side writes. The cancelling side records its mark, then cancels the matching
/// runs it finds (``mark(agentID:eventID:eventType:eventAt:match:description:)``, then ``sweep(agentID:mark:eventAt:match:onlyRun:)``);
/// a run keeps its values right after its claim and then looks for a mark (``keepValues(runID:values:)``, then
/// ``mark(matching:agentID:eventID:eventAt:)``), and so does a run that has just begun to wait. Either the run's look
/// finds the mark, or the mark came later and the sweep finds the run.
public struct CancelOnStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The states a cancelling event cancels a run in, besides `running` (and a failed run waiting for its retry).
    public static let waitingStates = ["waiting", "resuming", "awaiting_approval", "deferred"]

    /// Keeps what a run's event has at the paths the agent's `cancel_on` compares (a JSON object, path → value).
    public func keepValues(runID: UUID, values: String) async throws {
        try await database.each(
            "keep the cancel_on values of run \(runID)", writes: true,
            "UPDATE task_runs SET cancel_values = \(values)::jsonb WHERE run_id = \(runID)", logger: logger
        ) { _ in }
    }

    /// Records a cancelling event's mark (once per agent, event and values).
    public func mark(agentID: String, eventID: String, eventType: String, eventAt: Date, match: String, description: String) async throws {
        try await database.each(
            "record the cancellation mark of event \(eventID) for \(agentID)", writes: true,
            """
            INSERT INTO cancel_marks (agent_id, event_id, event_type, event_at, match, description)
            VALUES (\(agentID), \(eventID), \(eventType), \(eventAt), \(match)::jsonb, \(description))
            ON CONFLICT DO NOTHING
            """, logger: logger
        ) { _ in }
    }

    /// The oldest mark that cancels a run of `agentID` whose event (`eventID`, published at `eventAt`) has the values
    /// kept with the run (``keepValues(runID:values:)``); nil when none does. A cancelling event never cancels its own
    /// run (an event that both triggers the agent and cancels its runs).
    public func mark(matching values: String, agentID: String, eventID: String, eventAt: Date) async throws -> CancelMark? {
        var found: CancelMark?
        try await database.each(
            "look for a cancellation of event \(eventID) of \(agentID)",
            """
            SELECT m.event_id, m.description FROM cancel_marks m
            WHERE m.agent_id = \(agentID) AND m.event_at >= \(eventAt) AND m.event_id <> \(eventID)
              AND NOT EXISTS (SELECT 1 FROM jsonb_each(m.match) e WHERE (\(values)::jsonb) -> e.key IS DISTINCT FROM e.value)
            ORDER BY m.event_at, m.event_id LIMIT 1
            """, logger: logger
        ) { row in
            let (eventID, description) = try row.decode((String, String).self)
            found = CancelMark(eventID: eventID, description: description)
        }
        return found
    }

    /// Cancels the agent's runs a mark matches (events published up to `eventAt`, other than the mark's own, whose kept
    /// values equal `match`; only `onlyRun` when given): waiting ones (`waiting`, `resuming`, `awaiting_approval`,
    /// `deferred`) end `cancelled` (a pending approval of theirs is rejected, naming the event); a failed one waiting
    /// for its retry ends `cancelled` with its retry dropped (it is acked without running when it comes back). Returns
    /// those, and the ids of the matching runs that are running now, which their workers stop.
    public func sweep(agentID: String, mark: CancelMark, eventAt: Date, match: String, onlyRun: UUID? = nil) async throws -> CancelSweep {
        var sweep = CancelSweep()
        let message = "cancelled by \(mark.description)"
        try await database.each(
            "cancel the runs of \(agentID) that event \(mark.eventID) cancels", writes: true,
            """
            WITH target AS (
                SELECT r.run_id, r.state FROM task_runs r
                WHERE r.agent_id = \(agentID) AND r.cancel_values IS NOT NULL
                  AND r.state IN ('running', 'waiting', 'resuming', 'awaiting_approval', 'deferred', 'failed', 'timed_out')
                  AND (\(onlyRun == nil) OR r.run_id = \(onlyRun ?? UUID()))
                  AND r.event_id <> \(mark.eventID) AND (r.event_at IS NULL OR r.event_at <= \(eventAt))
                  AND NOT EXISTS (SELECT 1 FROM jsonb_each(\(match)::jsonb) e WHERE r.cancel_values -> e.key IS DISTINCT FROM e.value)
            ), waited AS (
                UPDATE task_runs r SET state = 'cancelled', finished_at = now(), cancelled_by = \(mark.eventID), message = \(message),
                       resume_at = NULL, wait_until = NULL
                FROM target t WHERE r.run_id = t.run_id
                  AND r.state IN ('waiting', 'resuming', 'awaiting_approval', 'deferred')
                RETURNING r.run_id, r.event_id, r.parent_run_id, t.state
            ), retries AS (
                UPDATE task_runs r SET state = 'cancelled', retry_cancelled = true, cancelled_by = \(mark.eventID),
                       message = coalesce(r.message || '; ', '') || 'its retry was ' || \(message)
                FROM target t WHERE r.run_id = t.run_id
                  AND r.state IN ('failed', 'timed_out') AND r.retry_at IS NOT NULL AND NOT r.retry_cancelled
                  AND NOT EXISTS (SELECT 1 FROM task_runs later WHERE later.agent_id = r.agent_id AND later.event_id = r.event_id
                                                               AND later.attempt > r.attempt)
                RETURNING r.run_id, r.event_id, r.parent_run_id, t.state
            ), rejected AS (
                UPDATE approvals a SET state = 'rejected', decided_by = \("event " + mark.eventID), decided_at = now(),
                       comment = \("the run was " + message)
                WHERE a.run_id IN (SELECT run_id FROM waited) AND a.state = 'pending'
            )
            SELECT run_id, event_id, parent_run_id, state FROM waited
            UNION ALL SELECT run_id, event_id, parent_run_id, state FROM retries
            UNION ALL SELECT run_id, '', NULL, 'running' FROM target WHERE state = 'running'
            """, logger: logger
        ) { row in
            let (runID, eventID, parent, state) = try row.decode((UUID, String, UUID?, String).self)
            if state == "running" {
                sweep.running.append(runID)
            } else {
                sweep.cancelled.append(.init(runID: runID, eventID: eventID, parentRunID: parent, previousState: state))
            }
        }
        return sweep
    }

    /// Names the event that cancelled a run (stopped while it ran, or cancelled at its claim).
    public func noteCancelled(runID: UUID, by eventID: String) async throws {
        try await database.each(
            "note the event that cancelled run \(runID)", writes: true,
            "UPDATE task_runs SET cancelled_by = \(eventID) WHERE run_id = \(runID) AND state = 'cancelled'", logger: logger
        ) { _ in }
    }

    /// Deletes the marks older than `age`: an event that waited in its queue longer than that is no longer cancelled
    /// by them. Returns how many.
    @discardableResult
    public func prune(olderThan age: Duration) async throws -> Int {
        var deleted = 0
        try await database.each(
            "delete old cancellation marks", writes: true,
            """
            WITH gone AS (DELETE FROM cancel_marks WHERE created_at < now() - make_interval(secs => \(age.inSeconds)) RETURNING 1)
            SELECT count(*) FROM gone
            """, logger: logger
        ) { row in deleted = try row.decode(Int.self) }
        return deleted
    }
}

extension RuntimeStore {
    /// Cancel on event: marks and the runs they cancel.
    public var cancelOn: CancelOnStore { CancelOnStore(database: database, logger: logger) }
}
