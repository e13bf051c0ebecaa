public import AgentryBus
public import AgentryCore
public import AgentryStore
public import Foundation
public import Logging

/// Deciding approvals (`agentry approvals`, the admin API) and expiring stale ones (the scheduler's leader): an
/// approved run's resume is published to its agent's queue; a rejected (or expired) run ends `rejected`, and a parent
/// that waits for it as a child is told it failed. Each decision is announced as `approval.decided`.
public struct ApprovalControl: Sendable {
    let store: RuntimeStore
    let bus: EventBus
    let logger: Logger

    public init(store: RuntimeStore, bus: EventBus, logger: Logger) {
        self.store = store
        self.bus = bus
        self.logger = logger
    }

    /// Why a decision was refused.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case notFound(UUID)
        case decided(UUID, ApprovalRecord.State)

        public var description: String {
            switch self {
            case .notFound(let id): return "no approval \(id.uuidString.lowercased()); `agentry approvals list` shows the pending ones"
            case .decided(let id, let state):
                return "approval \(id.uuidString.lowercased()) is \(state.rawValue) already; only a pending approval can be decided"
            }
        }
    }

    /// Approves or rejects a pending approval, as `who` (with an optional comment).
    public func decide(_ id: UUID, approve: Bool, by who: String, comment: String? = nil) async throws -> ApprovalRecord {
        switch try await store.approvals.decide(id, approve: approve, by: who, comment: comment) {
        case .failure(.notFound): throw Refusal.notFound(id)
        case .failure(.decided(let state)): throw Refusal.decided(id, state)
        case .success(let decision):
            await settle(decision)
            return decision.approval
        }
    }

    /// Expires the pending approvals past their time (their runs end `rejected`). Returns how many.
    @discardableResult
    public func expireDue() async throws -> Int {
        let decisions = try await store.approvals.expire()
        for decision in decisions { await settle(decision) }
        return decisions.count
    }

    func settle(_ decision: ApprovalDecision) async {
        let approval = decision.approval
        AgentryMetrics.approvalDecided(agent: approval.agentID, decision: approval.state.rawValue)
        if let wake = decision.wake {
            do {
                try await DirectDelivery.publish(wake, on: bus)
                try await store.delegations.markResumePublished(wake.runID)
            } catch {
                // The scheduler's leader publishes resumes left unpublished.
                logger.warning("cannot publish the approved run's resume now", metadata: ["agentry.run.id": "\(wake.runID)", "error": "\(error)"])
            }
        }
        if let run = decision.rejectedRun, let parent = run.parentRunID {
            do {
                if let wake = try await store.delegations.childEnded(
                    parent: parent, eventID: run.eventID, childRunID: run.runID, state: .failed, result: nil, message: run.message)
                {
                    try await DirectDelivery.publish(wake, on: bus)
                    try await store.delegations.markResumePublished(wake.runID)
                }
            } catch {
                logger.warning("cannot tell the parent of a rejected run", metadata: ["agentry.run.id": "\(run.runID)", "error": "\(error)"])
            }
        }
        do {
            try await bus.publish(Event(type: "approval.decided", payload: Self.payload(approval), priority: .high, source: "agentry.approvals"))
        } catch {
            logger.warning("cannot announce approval.decided", metadata: ["error": "\(error)"])
        }
    }

    /// An approval as the events and the resumed handler carry it.
    public static func payload(_ approval: ApprovalRecord) -> JSONObject {
        var object: JSONObject = [
            "approval_id": .string(approval.approvalID.uuidString.lowercased()), "run_id": .string(approval.runID.uuidString.lowercased()),
            "agent_id": .string(approval.agentID), "agent_version": .string(approval.agentVersion), "permission": .string(approval.permission),
            "requested_by": .string(approval.origin.rawValue), "state": .string(approval.state.rawValue),
            "expires_at": .string(Timestamp.format(approval.expiresAt)),
        ]
        if let reason = approval.reason { object["reason"] = .string(reason) }
        if let who = approval.decidedBy { object["decided_by"] = .string(who) }
        if let at = approval.decidedAt { object["decided_at"] = .string(Timestamp.format(at)) }
        if let comment = approval.comment { object["comment"] = .string(comment) }
        return object
    }
}
