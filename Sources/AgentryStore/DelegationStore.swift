public import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// A task a run delegated, as `run_children` keeps it.
public struct ChildRecord: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        case pending, succeeded, failed
        case timedOut = "timed_out"
        case cancelled
    }

    public var parentRunID: UUID
    public var position: Int
    /// The parent's rounds of delegation, from 1: the children a resume is called with are those of the last round.
    public var round: Int
    public var task: String
    public var agentID: String
    public var agentVersion: String
    /// The range of the parent's definition that chose the version.
    public var versionRange: String
    /// The child's event, as its JSON envelope.
    public var event: String
    public var eventID: String
    /// Whether the parent waits for it.
    public var awaited: Bool
    public var state: State
    public var childRunID: UUID?
    /// The child's result, as JSON text.
    public var result: String?
    public var message: String?
    public var createdAt: Date
    public var publishedAt: Date?
    public var finishedAt: Date?

    public init(
        parentRunID: UUID, position: Int, round: Int, task: String, agentID: String, agentVersion: String, versionRange: String,
        event: String, eventID: String, awaited: Bool, state: State = .pending, childRunID: UUID? = nil, result: String? = nil,
        message: String? = nil, createdAt: Date = Date(), publishedAt: Date? = nil, finishedAt: Date? = nil
    ) {
        self.parentRunID = parentRunID
        self.position = position
        self.round = round
        self.task = task
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.versionRange = versionRange
        self.event = event
        self.eventID = eventID
        self.awaited = awaited
        self.state = state
        self.childRunID = childRunID
        self.result = result
        self.message = message
        self.createdAt = createdAt
        self.publishedAt = publishedAt
        self.finishedAt = finishedAt
    }
}

/// A child's message, as it is published to its subagent's queue: the child's record with where its parent sits in
/// the run tree.
public struct ChildDispatch: Sendable, Hashable {
    public var child: ChildRecord
    /// The parent's depth (the child is one deeper) and its tree's root.
    public var parentDepth: Int
    public var rootRunID: UUID

    public init(child: ChildRecord, parentDepth: Int, rootRunID: UUID) {
        self.child = child
        self.parentDepth = parentDepth
        self.rootRunID = rootRunID
    }
}

/// A waiting run whose children ended (or whose deadline passed): its resume message goes to its agent's queue.
public struct RunWake: Sendable, Hashable {
    public var runID: UUID
    public var agentID: String
    public var agentVersion: String
    /// The run's event, as its JSON envelope.
    public var event: String
}

/// Run trees: a run's delegated tasks (`run_children`), its wait for them without a slot, the children's ends, and
/// the wake of the parent; the resume's claim; the sweeps that publish what a dead worker could not.
public struct DelegationStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The published versions of each agent that is not retired.
    public func publishedVersions(of agentIDs: [String]) async throws -> [String: [String]] {
        var versions: [String: [String]] = [:]
        try await database.each(
            "read the published versions of \(agentIDs.joined(separator: ", "))",
            """
            SELECT r.agent_id, r.version FROM agent_registry r JOIN agents a ON a.agent_id = r.agent_id AND a.status = 'active'
            WHERE r.agent_id = ANY(\(agentIDs)) AND r.status = 'published'
            """, logger: logger
        ) { row in
            let (agent, version) = try row.decode((String, String).self)
            versions[agent, default: []].append(version)
        }
        return versions
    }

    /// The next round's number and first position for a run's new children.
    public func nextRound(of runID: UUID) async throws -> (round: Int, position: Int) {
        var answer = (1, 0)
        try await database.each(
            "read the children of run \(runID)",
            "SELECT coalesce(max(round), 0) + 1, coalesce(max(position), -1) + 1 FROM run_children WHERE parent_run_id = \(runID)",
            logger: logger
        ) { row in answer = try row.decode((Int, Int).self) }
        return answer
    }

    /// Records a run's delegated tasks (and logs their events), once per position. When `wait` is given, the run
    /// waits in the same transaction: `waiting`, its event kept (`event`, the envelope) and its result, its slot given
    /// back. Returns false, recording nothing, when the run is no longer running (its worker was declared lost and
    /// another worker took it over, say).
    public func delegate(
        run: TaskRun, children: [ChildRecord], events: [Event], wait: Delegation.Await?, round: Int, event: String,
        result: String?
    ) async throws -> Bool {
        let logger = self.logger
        let columns = EventColumns(events)
        do {
            return try await database.withTransaction(logger: logger) { connection in
                if let wait {
                    let policy = JSON.serialize(.object(["on_failure": .string(wait.onFailure.rawValue), "round": .int(Int64(round))]))
                    var updated = false
                    for try await _ in try await connection.queryAll(
                        """
                        UPDATE task_runs SET state = 'waiting', event = \(event)::jsonb, result = \(result)::jsonb, wait = \(policy)::jsonb,
                               wait_until = now() + make_interval(secs => \(Double(wait.deadlineSeconds))), resume_at = NULL,
                               resume_published_at = NULL,
                               -- What this step used (run.usage), added to what earlier steps used.
                               input_tokens = coalesce(input_tokens + \(run.usage?.inputTokens)::int8, input_tokens, \(run.usage?.inputTokens)::int8),
                               output_tokens = coalesce(output_tokens + \(run.usage?.outputTokens)::int8, output_tokens, \(run.usage?.outputTokens)::int8),
                               cost = coalesce(cost + \(run.usage?.cost)::float8::numeric, cost, \(run.usage?.cost)::float8::numeric),
                               currency = coalesce(\(run.usage?.currency)::text, currency), model = coalesce(\(run.usage?.model)::text, model)
                        WHERE run_id = \(run.runID) AND state IN ('running', 'lost')
                        RETURNING run_id
                        """, logger: logger)
                    { updated = true }
                    guard updated else { return false }
                    try await connection.releaseSlot(of: run, logger: logger)
                }
                try await connection.queryAll(
                    """
                    INSERT INTO run_children (parent_run_id, position, round, task, agent_id, agent_version, version_range, event_id, event, awaited)
                    SELECT \(run.runID), t.position, \(round), t.task, t.agent, t.version, t.range, t.event_id, t.event::jsonb, \(wait != nil)
                    FROM unnest(\(children.map(\.position))::int4[], \(children.map(\.task))::text[], \(children.map(\.agentID))::text[],
                                \(children.map(\.agentVersion))::text[], \(children.map(\.versionRange))::text[], \(children.map(\.eventID))::text[],
                                \(children.map(\.event))::text[])
                         AS t(position, task, agent, version, range, event_id, event)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                try await connection.queryAll(
                    """
                    INSERT INTO event_log (event_id, event_type, payload, priority, "timestamp", source, correlation_id, causation_id)
                    SELECT t.id, t.type, t.payload::jsonb, t.priority, to_timestamp(t.ts), NULLIF(t.source, ''), NULLIF(t.correlation, ''),
                           NULLIF(t.causation, '')
                    FROM unnest(\(columns.ids)::text[], \(columns.types)::text[], \(columns.payloads)::text[], \(columns.priorities)::int4[],
                                \(columns.timestamps)::float8[], \(columns.sources)::text[], \(columns.correlations)::text[], \(columns.causations)::text[])
                         AS t(id, type, payload, priority, ts, source, correlation, causation)
                    ON CONFLICT (event_id) DO NOTHING
                    """, logger: logger)
                return true
            }
        } catch {
            throw StoreError(.query, "cannot record the delegated tasks of run \(run.runID)", cause: error)
        }
    }

    /// Marks children published (their messages confirmed by the broker).
    public func markPublished(parent: UUID, positions: [Int]) async throws {
        try await database.each(
            "mark the children of run \(parent) published", writes: true,
            """
            UPDATE run_children SET published_at = now() WHERE parent_run_id = \(parent) AND position = ANY(\(positions)::int4[])
              AND published_at IS NULL
            """, logger: logger
        ) { _ in }
    }

    /// Records who runs a child, and where it sits in the tree.
    public func link(child run: TaskRun, parent: UUID, position: Int, root: UUID, depth: Int, task: String) async throws {
        try await database.each(
            "link run \(run.runID) to its parent \(parent)", writes: true,
            """
            WITH linked AS (
                UPDATE task_runs SET parent_run_id = \(parent), root_run_id = \(root), depth = \(depth), task = \(task)
                WHERE run_id = \(run.runID) RETURNING run_id)
            UPDATE run_children SET child_run_id = \(run.runID)
            WHERE parent_run_id = \(parent) AND position = \(position) AND event_id = \(run.eventID) AND state = 'pending'
            """, logger: logger
        ) { _ in }
    }

    /// Records how a child ended, and wakes its parent when it waits and this was the last child of its round (or
    /// failed and the parent's policy is `fail`). The parent's row is locked first, so that of two children ending at
    /// once the second sees the first and exactly one wakes it. Returns the wake to publish, or nil.
    public func childEnded(
        parent: UUID, eventID: String, childRunID: UUID, state: ChildRecord.State, result: String?, message: String?
    ) async throws -> RunWake? {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                try await connection.queryAll("SELECT 1 FROM task_runs WHERE run_id = \(parent) FOR UPDATE", logger: logger)
                try await connection.queryAll(
                    """
                    UPDATE run_children SET state = \(state.rawValue), child_run_id = \(childRunID), result = \(result)::jsonb,
                           message = \(message), finished_at = now()
                    WHERE parent_run_id = \(parent) AND event_id = \(eventID) AND state = 'pending'
                    """, logger: logger)
                var wake: RunWake?
                for try await (runID, agent, version, event) in try await connection.queryAll(
                    """
                    UPDATE task_runs p SET state = 'resuming', resume_at = now(), resume_published_at = NULL
                    WHERE p.run_id = \(parent) AND p.state = 'waiting' AND (
                        NOT EXISTS (SELECT 1 FROM run_children c WHERE c.parent_run_id = p.run_id AND c.round = (p.wait->>'round')::int
                                    AND c.awaited AND c.state = 'pending')
                        OR (p.wait->>'on_failure' = 'fail' AND EXISTS (
                            SELECT 1 FROM run_children c WHERE c.parent_run_id = p.run_id AND c.round = (p.wait->>'round')::int
                            AND c.awaited AND c.state IN ('failed', 'timed_out', 'cancelled'))))
                    RETURNING p.run_id, p.agent_id, p.agent_version, p.event::text
                    """, logger: logger
                ).decode((UUID, String, String, String).self) {
                    wake = RunWake(runID: runID, agentID: agent, agentVersion: version, event: event)
                }
                return wake
            }
        } catch {
            throw StoreError(.query, "cannot record the end of child \(eventID) of run \(parent)", cause: error)
        }
    }

    /// What a waiting (or resumed) run does when a child fails; nil when it never waited.
    public func failurePolicy(of runID: UUID) async throws -> Delegation.FailurePolicy? {
        var policy: Delegation.FailurePolicy?
        try await database.each(
            "read the wait of run \(runID)", "SELECT wait->>'on_failure' FROM task_runs WHERE run_id = \(runID)", logger: logger
        ) { row in policy = try row.decode(String?.self).flatMap(Delegation.FailurePolicy.init(rawValue:)) }
        return policy
    }

    /// Marks a run's resume published.
    public func markResumePublished(_ runID: UUID) async throws {
        try await database.each(
            "mark the resume of run \(runID) published", writes: true,
            "UPDATE task_runs SET resume_published_at = now() WHERE run_id = \(runID) AND resume_published_at IS NULL",
            logger: logger
        ) { _ in }
    }

    /// What claiming a resume found.
    public enum ResumeClaim: Sendable, Equatable {
        /// The run is running again here, in `slot`, at step `step`; `deferred` says why it was deferred, for a run that
        /// starts now after waiting its turn (see ``FlowStore``).
        case claimed(slot: Int, step: Int, deferred: String?)
        /// The agent runs `max_parallel_tasks` tasks already.
        case busy
        /// A live worker runs it (a resume delivered twice).
        case runningElsewhere(workerID: String)
        /// Nothing to resume: the run is in `state` (resumed and ended already, or unknown: nil).
        case notResumable(state: String?)
    }

    /// Takes a slot for a resuming run and makes it running on this worker. A run declared lost while it ran a
    /// resume, or running on a worker whose heartbeat expired, is taken over the same way.
    public func claimResume(
        _ runID: UUID, agentID: String, workerID: String, instanceID: UUID?, maxParallel: Int, workerExpiry: Duration
    ) async throws -> ResumeClaim {
        let expiry = workerExpiry.inSeconds
        var answer: ResumeClaim = .notResumable(state: nil)
        try await database.each(
            "claim the resume of run \(runID)", writes: true,
            """
            WITH alive AS (
                SELECT worker_id FROM workers WHERE status IN ('running', 'stopping') AND heartbeat_at > now() - make_interval(secs => \(expiry))
            ), run AS (
                SELECT r.run_id, r.state, r.worker_id, r.defer_reason FROM task_runs r WHERE r.run_id = \(runID) AND r.agent_id = \(agentID) FOR UPDATE
            ), resumable AS (
                SELECT run_id FROM run WHERE state = 'resuming' OR (state = 'lost' AND EXISTS (SELECT 1 FROM task_runs t WHERE t.run_id = run.run_id AND t.wait IS NOT NULL))
                    OR (state = 'running' AND worker_id <> \(workerID) AND worker_id NOT IN (SELECT worker_id FROM alive)
                        AND EXISTS (SELECT 1 FROM task_runs t WHERE t.run_id = run.run_id AND t.wait IS NOT NULL))
            ), locked AS (
                SELECT s.slot FROM agent_slots s
                WHERE s.agent_id = \(agentID) AND s.slot < \(maxParallel) AND EXISTS (SELECT 1 FROM resumable)
                  AND (s.run_id IS NULL OR s.run_id = \(runID)
                       OR (s.worker_id <> \(workerID) AND s.worker_id NOT IN (SELECT worker_id FROM alive)))
                ORDER BY (s.run_id = \(runID)) DESC NULLS LAST, s.slot LIMIT 1
                FOR UPDATE OF s SKIP LOCKED
            ), taken AS (
                UPDATE agent_slots s SET run_id = \(runID), worker_id = \(workerID), taken_at = now()
                FROM locked l WHERE s.agent_id = \(agentID) AND s.slot = l.slot
                RETURNING s.slot
            ), resumed AS (
                -- A deferred run starts its first step (its reason cleared); any other resume calls the handler again.
                UPDATE task_runs r SET state = 'running', worker_id = \(workerID), instance_id = \(instanceID),
                       steps = CASE WHEN r.defer_reason IS NULL THEN r.steps + 1 ELSE r.steps END, defer_reason = NULL,
                       started_at = CASE WHEN r.defer_reason IS NULL THEN r.started_at ELSE clock_timestamp() END,
                       finished_at = NULL, message = NULL, resume_published_at = coalesce(r.resume_published_at, now())
                WHERE r.run_id IN (SELECT run_id FROM resumable) AND EXISTS (SELECT 1 FROM taken)
                RETURNING r.steps
            )
            SELECT (SELECT slot FROM taken), (SELECT steps FROM resumed), (SELECT defer_reason FROM run), (SELECT state FROM run),
                   (SELECT worker_id FROM run), EXISTS (SELECT 1 FROM resumable),
                   EXISTS (SELECT 1 FROM run WHERE worker_id IN (SELECT worker_id FROM alive))
            """, logger: logger
        ) { row in
            let (slot, step, deferred, state, worker, resumable, workerAlive) = try row.decode(
                (Int?, Int?, String?, String?, String?, Bool, Bool).self)
            if let slot, let step {
                answer = .claimed(slot: slot, step: step, deferred: deferred)
            } else if resumable {
                answer = .busy
            } else if state == "running", let worker, worker != workerID || workerAlive {
                answer = .runningElsewhere(workerID: worker)
            } else {
                answer = .notResumable(state: state)
            }
        }
        return answer
    }

    static let childColumns = """
        c.parent_run_id, c.position, c.round, c.task, c.agent_id, c.agent_version, c.version_range, c.event::text, c.event_id,
        c.awaited, c.state, c.child_run_id, c.result::text, c.message, c.created_at, c.published_at, c.finished_at
        """

    static func child(_ row: PostgresRow) throws -> ChildRecord {
        let (
            parent, position, round, task, agent, version, range, event, eventID, awaited, state, childRun, result, message, created, published,
            finished
        ) =
            try row.decode(
                (UUID, Int, Int, String, String, String, String, String, String, Bool, String, UUID?, String?, String?, Date, Date?, Date?).self)
        return ChildRecord(
            parentRunID: parent, position: position, round: round, task: task, agentID: agent, agentVersion: version, versionRange: range,
            event: event, eventID: eventID, awaited: awaited, state: ChildRecord.State(rawValue: state) ?? .pending, childRunID: childRun,
            result: result, message: message, createdAt: created, publishedAt: published, finishedAt: finished)
    }

    /// A run's children, in order; of one round, or all.
    public func children(of runID: UUID, round: Int? = nil) async throws -> [ChildRecord] {
        var result: [ChildRecord] = []
        try await database.each(
            "read the children of run \(runID)",
            """
            SELECT \(unescaped: Self.childColumns) FROM run_children c
            WHERE c.parent_run_id = \(runID) AND (\(round ?? 0) = 0 OR c.round = \(round ?? 0)) ORDER BY c.position
            """, logger: logger
        ) { row in result.append(try Self.child(row)) }
        return result
    }

    /// The last round of a run's children (the one its resume is called with).
    public func lastRound(of runID: UUID) async throws -> [ChildRecord] {
        let all = try await children(of: runID)
        guard let last = all.map(\.round).max() else { return [] }
        return all.filter { $0.round == last }
    }

    // MARK: Sweeps (the scheduler's leader)

    /// Children recorded over `grace` ago and not published: their worker died between the record and the publish.
    public func unpublishedChildren(olderThan grace: Duration, limit: Int = 100) async throws -> [ChildDispatch] {
        var result: [ChildDispatch] = []
        try await database.each(
            "read unpublished children",
            """
            SELECT \(unescaped: Self.childColumns), p.depth, coalesce(p.root_run_id, p.run_id) FROM run_children c
            JOIN task_runs p ON p.run_id = c.parent_run_id
            WHERE c.published_at IS NULL AND c.created_at < now() - make_interval(secs => \(grace.inSeconds))
            ORDER BY c.created_at LIMIT \(limit)
            """, logger: logger
        ) { row in
            let (
                parent, position, round, task, agent, version, range, event, eventID, awaited, state, childRun, result_, message, created, published,
                finished, depth, root
            ) =
                try row.decode(
                    (
                        UUID, Int, Int, String, String, String, String, String, String, Bool, String, UUID?, String?, String?, Date, Date?, Date?,
                        Int, UUID
                    ).self)
            let child = ChildRecord(
                parentRunID: parent, position: position, round: round, task: task, agentID: agent, agentVersion: version, versionRange: range,
                event: event, eventID: eventID, awaited: awaited, state: ChildRecord.State(rawValue: state) ?? .pending, childRunID: childRun,
                result: result_, message: message, createdAt: created, publishedAt: published, finishedAt: finished)
            result.append(ChildDispatch(child: child, parentDepth: depth, rootRunID: root))
        }
        return result
    }

    /// Runs whose resume is due and was not published within `grace` (the worker that woke them died first).
    public func unpublishedResumes(olderThan grace: Duration, limit: Int = 100) async throws -> [RunWake] {
        var result: [RunWake] = []
        try await database.each(
            "read unpublished resumes",
            """
            SELECT run_id, agent_id, agent_version, event::text FROM task_runs
            WHERE state = 'resuming' AND resume_published_at IS NULL AND resume_at < now() - make_interval(secs => \(grace.inSeconds))
            ORDER BY resume_at LIMIT \(limit)
            """, logger: logger
        ) { row in
            let (runID, agent, version, event) = try row.decode((UUID, String, String, String).self)
            result.append(RunWake(runID: runID, agentID: agent, agentVersion: version, event: event))
        }
        return result
    }

    /// Waiting runs past their deadline: the children still pending are recorded as timed out and the runs resume.
    public func expireWaits(limit: Int = 100) async throws -> [RunWake] {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                var wakes: [RunWake] = []
                for try await (runID, agent, version, event) in try await connection.queryAll(
                    """
                    WITH due AS (
                        SELECT run_id, (wait->>'round')::int AS round FROM task_runs
                        WHERE state = 'waiting' AND wait_until < now() ORDER BY wait_until LIMIT \(limit) FOR UPDATE SKIP LOCKED
                    ), expired AS (
                        UPDATE run_children c SET state = 'timed_out', finished_at = now(),
                               message = 'the parent stopped waiting: its await deadline passed'
                        FROM due d WHERE c.parent_run_id = d.run_id AND c.round = d.round AND c.state = 'pending'
                    )
                    UPDATE task_runs p SET state = 'resuming', resume_at = now(), resume_published_at = NULL
                    FROM due d WHERE p.run_id = d.run_id
                    RETURNING p.run_id, p.agent_id, p.agent_version, p.event::text
                    """, logger: logger
                ).decode((UUID, String, String, String).self) {
                    wakes.append(RunWake(runID: runID, agentID: agent, agentVersion: version, event: event))
                }
                return wakes
            }
        } catch {
            throw StoreError(.query, "cannot expire the waits past their deadline", cause: error)
        }
    }

    /// A run's children runs, with their own children, for `runs show`: the runs whose parent is `runID`.
    public func childRuns(of runID: UUID) async throws -> [UUID] {
        var result: [UUID] = []
        try await database.each(
            "read the child runs of \(runID)",
            "SELECT run_id FROM task_runs WHERE parent_run_id = \(runID) ORDER BY started_at, run_id", logger: logger
        ) { row in result.append(try row.decode(UUID.self)) }
        return result
    }
}
