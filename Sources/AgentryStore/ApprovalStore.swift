import AgentryCore
public import Foundation
public import Logging
import PostgresNIO

/// A request to approve a permission a run needs (`approvals`).
public struct ApprovalRecord: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        case pending, approved, rejected, expired
    }

    /// Who asked: the definition (the run waits before its handler starts) or the handler's result.
    public enum Origin: String, Sendable, Hashable {
        case definition, handler
    }

    public var approvalID: UUID
    public var runID: UUID
    public var agentID: String
    public var agentVersion: String
    /// `<section>.<permission>`; several, comma-separated, when the definition asks for more than one at once.
    public var permission: String
    public var reason: String?
    /// What the handler asked to be called with once approved, as JSON text.
    public var then: String?
    public var origin: Origin
    public var state: State
    public var requestedAt: Date
    public var expiresAt: Date
    public var decidedBy: String?
    public var decidedAt: Date?
    public var comment: String?

    public init(
        approvalID: UUID, runID: UUID, agentID: String, agentVersion: String, permission: String, reason: String?, then: String?,
        origin: Origin, state: State = .pending, requestedAt: Date = Date(), expiresAt: Date, decidedBy: String? = nil,
        decidedAt: Date? = nil, comment: String? = nil
    ) {
        self.approvalID = approvalID
        self.runID = runID
        self.agentID = agentID
        self.agentVersion = agentVersion
        self.permission = permission
        self.reason = reason
        self.then = then
        self.origin = origin
        self.state = state
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
        self.comment = comment
    }
}

/// What deciding an approval did.
public struct ApprovalDecision: Sendable, Hashable {
    public var approval: ApprovalRecord
    /// Approved: the run's resume, to publish.
    public var wake: RunWake?
    /// Rejected or expired: the run, now `rejected` (its parent, if any, is told by the caller).
    public var rejectedRun: TaskRun?
}

/// Approvals: a run that waits for one (its slot given back), the decision, expiry.
public struct ApprovalStore: Sendable {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Makes a running run wait for `approval` in one transaction: the run `awaiting_approval` (its event and result
    /// kept, its slot given back), the request recorded. Returns false, recording nothing, when the run is no longer
    /// running here.
    public func request(_ approval: ApprovalRecord, run: TaskRun, event: String, result: String?) async throws -> Bool {
        let logger = self.logger
        let wait = JSON.serialize(.object(["approval": .string(approval.approvalID.uuidString.lowercased())]))
        do {
            return try await database.withTransaction(logger: logger) { connection in
                var updated = false
                for try await _ in try await connection.queryAll(
                    """
                    UPDATE task_runs SET state = 'awaiting_approval', event = \(event)::jsonb, result = \(result)::jsonb,
                           wait = \(wait)::jsonb, wait_until = \(approval.expiresAt), resume_at = NULL, resume_published_at = NULL,
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
                try await connection.queryAll(
                    """
                    INSERT INTO approvals (approval_id, run_id, agent_id, agent_version, permission, reason, then_payload, requested_by, expires_at)
                    VALUES (\(approval.approvalID), \(approval.runID), \(approval.agentID), \(approval.agentVersion), \(approval.permission),
                            \(approval.reason), \(approval.then)::jsonb, \(approval.origin.rawValue), \(approval.expiresAt))
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                return true
            }
        } catch {
            throw StoreError(.query, "cannot record the approval request of run \(run.runID)", cause: error)
        }
    }

    /// Records a pending approval for a run that goes on running (its handler asked through the admin API and reads
    /// the decision there). Returns false when the run is not running.
    public func requestWhileRunning(_ approval: ApprovalRecord) async throws -> Bool {
        var recorded = false
        try await database.each(
            "record an approval request of run \(approval.runID)", writes: true,
            """
            INSERT INTO approvals (approval_id, run_id, agent_id, agent_version, permission, reason, then_payload, requested_by, expires_at)
            SELECT \(approval.approvalID), r.run_id, r.agent_id, r.agent_version, \(approval.permission), \(approval.reason), NULL, 'handler',
                   \(approval.expiresAt)
            FROM task_runs r WHERE r.run_id = \(approval.runID) AND r.state = 'running'
            RETURNING approval_id
            """, logger: logger
        ) { _ in recorded = true }
        return recorded
    }

    static let columns = """
        approval_id, run_id, agent_id, agent_version, permission, reason, then_payload::text, requested_by, state, requested_at,
        expires_at, decided_by, decided_at, comment
        """

    static func record(_ row: PostgresRow) throws -> ApprovalRecord {
        let (id, run, agent, version, permission, reason, then, origin, state, requested, expires, decidedBy, decidedAt, comment) =
            try row.decode((UUID, UUID, String, String, String, String?, String?, String, String, Date, Date, String?, Date?, String?).self)
        return ApprovalRecord(
            approvalID: id, runID: run, agentID: agent, agentVersion: version, permission: permission, reason: reason, then: then,
            origin: ApprovalRecord.Origin(rawValue: origin) ?? .handler, state: ApprovalRecord.State(rawValue: state) ?? .pending,
            requestedAt: requested, expiresAt: expires, decidedBy: decidedBy, decidedAt: decidedAt, comment: comment)
    }

    /// Approvals, newest first: of one state, one run, or all.
    public func list(state: ApprovalRecord.State? = nil, runID: UUID? = nil, limit: Int = 100) async throws -> [ApprovalRecord] {
        var result: [ApprovalRecord] = []
        try await database.each(
            "read approvals",
            """
            SELECT \(unescaped: Self.columns) FROM approvals
            WHERE (\(state?.rawValue ?? "") = '' OR state = \(state?.rawValue ?? ""))
              AND (\(runID == nil) OR run_id = \(runID ?? UUID()))
            ORDER BY requested_at DESC LIMIT \(max(1, min(limit, 10_000)))
            """, logger: logger
        ) { row in result.append(try Self.record(row)) }
        return result
    }

    /// The approvals decided (or expired) most recently, newest decision first.
    public func decided(limit: Int = 10) async throws -> [ApprovalRecord] {
        var result: [ApprovalRecord] = []
        try await database.each(
            "read decided approvals",
            """
            SELECT \(unescaped: Self.columns) FROM approvals WHERE state <> 'pending'
            ORDER BY decided_at DESC NULLS LAST, requested_at DESC LIMIT \(max(1, min(limit, 1_000)))
            """, logger: logger
        ) { row in result.append(try Self.record(row)) }
        return result
    }

    public func approval(_ id: UUID) async throws -> ApprovalRecord? {
        var found: ApprovalRecord?
        try await database.each(
            "read approval \(id)", "SELECT \(unescaped: Self.columns) FROM approvals WHERE approval_id = \(id)", logger: logger
        ) { row in found = try Self.record(row) }
        return found
    }

    /// Why a decision cannot be recorded.
    public enum DecisionProblem: Error, Sendable, Equatable {
        case notFound
        /// Decided already (or expired): its state.
        case decided(ApprovalRecord.State)
    }

    /// Records a decision on a pending approval: approved, the run is `resuming` (the caller publishes its resume);
    /// rejected, the run ends `rejected`. A request past its expiry is expired instead, and refused.
    public func decide(_ id: UUID, approve: Bool, by who: String, comment: String?) async throws -> Result<ApprovalDecision, DecisionProblem> {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                var current: ApprovalRecord?
                for try await row in try await connection.queryAll(
                    "SELECT \(unescaped: Self.columns) FROM approvals WHERE approval_id = \(id) FOR UPDATE", logger: logger)
                {
                    current = try Self.record(row)
                }
                guard var approval = current else { return .failure(.notFound) }
                guard approval.state == .pending else { return .failure(.decided(approval.state)) }
                if approval.expiresAt < Date() { return .failure(.decided(.expired)) }
                let state: ApprovalRecord.State = approve ? .approved : .rejected
                var decidedAt = Date()
                for try await at in try await connection.queryAll(
                    """
                    UPDATE approvals SET state = \(state.rawValue), decided_by = \(who), decided_at = now(), comment = \(comment)
                    WHERE approval_id = \(id) RETURNING decided_at
                    """, logger: logger
                ).decode(Date.self) { decidedAt = at }
                approval.state = state
                approval.decidedBy = who
                approval.decidedAt = decidedAt
                approval.comment = comment
                let rejection = "rejected by \(who)" + (comment.map { ": \($0)" } ?? "")
                let outcome = try await Self.settleRun(approval, rejection: rejection, on: connection, logger: logger)
                return .success(ApprovalDecision(approval: approval, wake: outcome.wake, rejectedRun: outcome.rejected))
            }
        } catch {
            throw StoreError(.query, "cannot record the decision on approval \(id)", cause: error)
        }
    }

    /// The run of a decided approval: resuming when approved, rejected otherwise.
    static func settleRun(
        _ approval: ApprovalRecord, rejection: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> (wake: RunWake?, rejected: TaskRun?) {
        if approval.state == .approved {
            var wake: RunWake?
            for try await (runID, agent, version, event) in try await connection.queryAll(
                """
                UPDATE task_runs SET state = 'resuming', resume_at = now(), resume_published_at = NULL
                WHERE run_id = \(approval.runID) AND state = 'awaiting_approval'
                RETURNING run_id, agent_id, agent_version, event::text
                """, logger: logger
            ).decode((UUID, String, String, String).self) {
                wake = RunWake(runID: runID, agentID: agent, agentVersion: version, event: event)
            }
            return (wake, nil)
        }
        var rejected: TaskRun?
        for try await (runID, agent, version, eventID, type, priority, parent, root, depth, task) in try await connection.queryAll(
            """
            UPDATE task_runs SET state = 'rejected', finished_at = now(), message = \(rejection)
            WHERE run_id = \(approval.runID) AND state = 'awaiting_approval'
            RETURNING run_id, agent_id, agent_version, event_id, event_type, priority, parent_run_id, root_run_id, depth, task
            """, logger: logger
        ).decode((UUID, String, String, String, String, Int, UUID?, UUID?, Int, String?).self) {
            var run = TaskRun(
                runID: runID, agentID: agent, agentVersion: version, eventID: eventID, eventType: type,
                priority: Priority(rawValue: priority) ?? .normal, workerID: nil, instanceID: nil, attempt: 1, state: .rejected, eventAt: nil,
                message: rejection)
            run.parentRunID = parent
            run.rootRunID = root
            run.depth = depth
            run.task = task
            rejected = run
        }
        return (nil, rejected)
    }

    /// Pending approvals past their expiry: each expired, its run rejected. Returns them with their runs.
    public func expire(limit: Int = 100) async throws -> [ApprovalDecision] {
        let logger = self.logger
        do {
            return try await database.withTransaction(logger: logger) { connection in
                var due: [ApprovalRecord] = []
                for try await row in try await connection.queryAll(
                    """
                    UPDATE approvals SET state = 'expired', decided_at = now()
                    WHERE approval_id IN (SELECT approval_id FROM approvals WHERE state = 'pending' AND expires_at < now()
                                          ORDER BY expires_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                    RETURNING \(unescaped: Self.columns)
                    """, logger: logger)
                {
                    due.append(try Self.record(row))
                }
                var decisions: [ApprovalDecision] = []
                for approval in due {
                    let hours = approval.expiresAt.timeIntervalSince(approval.requestedAt) / 3600
                    let rejection =
                        "the approval request for \(approval.permission) expired after \(String(format: "%g", (hours * 100).rounded() / 100)) h"
                    let outcome = try await Self.settleRun(approval, rejection: rejection, on: connection, logger: logger)
                    decisions.append(ApprovalDecision(approval: approval, wake: nil, rejectedRun: outcome.rejected))
                }
                return decisions
            }
        } catch {
            throw StoreError(.query, "cannot expire the approvals past their time", cause: error)
        }
    }

    /// The approval a resuming run waited for (its wait names it), or nil when it waited for children.
    public func awaited(by runID: UUID) async throws -> ApprovalRecord? {
        var found: ApprovalRecord?
        try await database.each(
            "read the approval run \(runID) waited for",
            """
            SELECT \(unescaped: Self.columns) FROM approvals
            WHERE approval_id = (SELECT (wait->>'approval')::uuid FROM task_runs WHERE run_id = \(runID) AND wait ? 'approval')
            """, logger: logger
        ) { row in found = try Self.record(row) }
        return found
    }
}
