public import AgentryCore
public import Foundation
import PostgresNIO

/// One attempt to run an agent's task for an event.
public struct TaskRun: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        case running, succeeded, failed
        case timedOut = "timed_out"
        case skipped, cancelled, lost
        /// Waiting for the children it delegated to, holding no slot (see ``DelegationStore``).
        case waiting
        /// Its children ended (or its deadline passed): its resume is on its way to a worker.
        case resuming
        /// Waiting for someone to approve a permission it needs, holding no slot or lock.
        case awaitingApproval = "awaiting_approval"
        /// Its approval was rejected, or expired.
        case rejected
        /// Waiting, holding no slot, for its flow key's turn, a rate token, its budget's next period or the end of a
        /// debounce window (see ``FlowStore``).
        case deferred
        /// A budget with `on_exceeded: reject` refused it.
        case overBudget = "over_budget"

        public var isFinished: Bool { ![.running, .waiting, .resuming, .awaitingApproval, .deferred].contains(self) }
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
    /// Where the run sits in a run tree: the run that delegated it (nil for a run an event started), the tree's root,
    /// its depth (a root is at 0) and the task it serves.
    public var parentRunID: UUID?
    public var rootRunID: UUID?
    public var depth = 0
    public var task: String?
    /// How many times its handler was called: 1, and one more per resume.
    public var steps = 1
    /// While it waits: until when.
    public var waitUntil: Date?
    /// What its handler last reported, as JSON text.
    public var progress: String?
    /// Why it is (or last was) deferred, and its flow key (see ``FlowStore``); when a deferred run is tried again.
    public var deferReason: String?
    public var flowKey: String?
    public var resumeAt: Date?
    /// The budgets that applied when it started, as JSON (see ``AppliedBudget``); nil when none did.
    public var budgets: String?
    /// The id of the event that cancelled it, for a run an agent's `cancel_on` event cancelled.
    public var cancelledBy: String?
    /// What this try used (tokens, cost, model), as its handler reported it; nil when it reported nothing.
    public var usage: RunUsage?

    public init(
        runID: UUID, agentID: String, agentVersion: String, eventID: String, eventType: String, priority: Priority,
        workerID: String?, instanceID: UUID?, attempt: Int, state: State, eventAt: Date?, receivedAt: Date? = nil, startedAt: Date = Date(),
        finishedAt: Date? = nil, result: String? = nil, output: String? = nil, stderr: String? = nil,
        exitStatus: Int? = nil, message: String? = nil, retryAt: Date? = nil
    ) {
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

/// Task runs: run slots, claims, skipped runs, outcomes, reads; retries cancelled and runs handed over.
extension RuntimeStore {
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
        try await execute(
            "create run slots of \(agentID)",
            """
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
    public func claim(
        batch runs: [TaskRun], announcing: [(runID: UUID, event: Event)] = [], maxParallel: Int,
        workerExpiry: Duration
    ) async throws -> [Claim] {
        guard let first = runs.first else { return [] }
        let statement = ClaimStatement(
            runs: runs, announcements: EventColumns(announcing: announcing), agentID: first.agentID,
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
        try await execute(
            "record a skipped run of \(run.agentID)",
            """
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
        /// What the run used, as its handler reported it (see ``RunUsage``).
        public var usage: RunUsage?
        /// The event that announces this outcome (`agent.task.completed`), written to `event_log` with it when the run
        /// is recorded (and not when it is refused).
        public var announcement: Event?

        public init(
            state: TaskRun.State, result: String? = nil, output: String? = nil, stderr: String? = nil,
            exitStatus: Int? = nil, message: String? = nil, retryAt: Date? = nil, usage: RunUsage? = nil, announcement: Event? = nil
        ) {
            self.announcement = announcement
            self.usage = usage
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
            _ = try await finish(batch: [
                (
                    runID, agentID, slot,
                    Outcome(
                        state: .cancelled, output: outcome.output, stderr: outcome.stderr,
                        message: "another run completed this event for this agent first", usage: outcome.usage)
                )
            ])
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
        if let agentID {
            binds.append(.text(agentID))
            conditions.append("agent_id = $\(binds.count)")
        }
        if let eventID {
            binds.append(.text(eventID))
            conditions.append("event_id = $\(binds.count)::text")
        }
        if let state {
            binds.append(.text(state.rawValue))
            conditions.append("state = $\(binds.count)")
        }
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
        return try await runs(from: "task_runs WHERE \(condition)", bindings: bindings, limit: max(1, min(limit, 10_000)))
    }

    /// The runs `from` names (a table expression with its conditions, whose columns are task_runs'), newest first.
    func runs(from: String, bindings: PostgresBindings, limit: Int) async throws -> [TaskRun] {
        let sql = """
            SELECT run_id, agent_id, agent_version, event_id::text, event_type, priority, worker_id, instance_id, attempt, state,
                   event_at, started_at, finished_at, result::text, output, stderr, exit_status, message, retry_at, received_at,
                   parent_run_id, root_run_id, depth, task, steps, wait_until, progress::text, defer_reason, flow_key, resume_at, budgets::text, cancelled_by,
                   input_tokens, output_tokens, cost::float8, currency::text, model
            FROM \(from) ORDER BY started_at DESC, run_id DESC LIMIT \(limit)
            """
        var result: [TaskRun] = []
        do {
            let rows = try await database.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
            for try await row in rows {
                let (
                    runID, agentID, version, eventID, eventType, priority, workerID, instanceID, attempt, state,
                    eventAt, startedAt, finishedAt, resultJSON, output, stderr, exitStatus, message, retryAt, receivedAt,
                    parent, root, depth, task, steps, waitUntil, progress, deferReason, flowKey, resumeAt, budgets, cancelledBy, inputTokens,
                    outputTokens, cost, currency, model
                ) =
                    try row.decode(
                        (
                            UUID, String, String, String, String, Int, String?, UUID?, Int, String,
                            Date?, Date, Date?, String?, String?, String?, Int?, String?, Date?, Date?,
                            UUID?, UUID?, Int, String?, Int, Date?, String?, String?, String?, Date?, String?, String?, Int?, Int?, Double?, String?,
                            String?
                        ).self)
                var run =
                    TaskRun(
                        runID: runID, agentID: agentID, agentVersion: version, eventID: eventID, eventType: eventType,
                        priority: Priority(rawValue: priority) ?? .low, workerID: workerID, instanceID: instanceID, attempt: attempt,
                        state: TaskRun.State(rawValue: state) ?? .failed, eventAt: eventAt, receivedAt: receivedAt, startedAt: startedAt,
                        finishedAt: finishedAt, result: resultJSON, output: output, stderr: stderr, exitStatus: exitStatus, message: message,
                        retryAt: retryAt)
                run.parentRunID = parent
                run.rootRunID = root
                run.depth = depth
                run.task = task
                run.steps = steps
                run.waitUntil = waitUntil
                run.progress = progress
                run.deferReason = deferReason
                run.flowKey = flowKey
                run.resumeAt = resumeAt
                run.budgets = budgets
                run.cancelledBy = cancelledBy
                let usage = RunUsage(inputTokens: inputTokens, outputTokens: outputTokens, cost: cost, currency: currency, model: model)
                run.usage = usage.isEmpty ? nil : usage
                result.append(run)
            }
        } catch {
            throw StoreError(.query, "cannot read task runs", cause: error)
        }
        return result
    }

    /// Cancels the retry a failed run waits for: when the retry comes back, it is acked without running. Returns
    /// false when the run is not waiting for a retry (or a later attempt already started).
    public func cancelRetry(_ runID: UUID, by who: String) async throws -> Bool {
        var updated = false
        try await query(
            "cancel the retry of run \(runID)", writes: true,
            """
            UPDATE task_runs r SET retry_cancelled = true, message = COALESCE(r.message || '; ', '') || 'retry cancelled by ' || \(who)
            WHERE r.run_id = \(runID) AND r.state IN ('failed', 'timed_out') AND r.retry_at IS NOT NULL AND NOT r.retry_cancelled
              AND NOT EXISTS (SELECT 1 FROM task_runs later WHERE later.agent_id = r.agent_id AND later.event_id = r.event_id
                                                           AND later.attempt > r.attempt)
            RETURNING run_id
            """
        ) { _ in updated = true }
        return updated
    }

    /// Keeps what a running run's handler reports about itself. Returns false when the run is not running.
    public func reportProgress(_ runID: UUID, _ json: String) async throws -> Bool {
        var updated = false
        try await query(
            "keep the progress of run \(runID)", writes: true,
            "UPDATE task_runs SET progress = \(json)::jsonb WHERE run_id = \(runID) AND state = 'running' RETURNING run_id"
        ) { _ in updated = true }
        return updated
    }

    /// Hands a running run over: keeps its event, so that its delivery can be acked before it ends.
    public func handOver(_ runID: UUID, event: String) async throws -> Bool {
        var updated = false
        try await query(
            "hand over run \(runID)", writes: true,
            """
            UPDATE task_runs SET event = \(event)::jsonb, handed_over_at = now() WHERE run_id = \(runID) AND state = 'running'
            RETURNING run_id
            """
        ) { _ in updated = true }
        return updated
    }
}
