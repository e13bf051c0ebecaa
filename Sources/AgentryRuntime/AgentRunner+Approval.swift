import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging

/// Approvals: a run that needs one waits for it, stored, its delivery acked and its slot given back; the decision
/// (``ApprovalControl``) resumes it or ends it `rejected`.
extension AgentRunner {
    func requestApproval(
        _ request: ApprovalRequest, origin: ApprovalRecord.Origin, run: TaskRun, event: Event, settlement: Settlement, result: String?,
        announcedStart: Task<Void, Never>?
    ) async {
        let seconds = request.expiresInSeconds ?? ApprovalRequest.defaultExpirySeconds
        let approval = ApprovalRecord(
            approvalID: UUID(), runID: run.runID, agentID: agentID, agentVersion: run.agentVersion, permission: request.permission,
            reason: request.reason, then: request.then.map(JSON.serialize), origin: origin, expiresAt: Date().addingTimeInterval(Double(seconds)))
        let envelope = String(decoding: EventWireFormat.encode(event), as: UTF8.self)
        guard
            let recorded = await persist(
                "record the approval request", { try await self.context.store.approvals.request(approval, run: run, event: envelope, result: result) }
            )
        else { return settlement.release() }
        guard recorded else {
            logger.warning("run no longer running here; its approval request is dropped", metadata: ["agentry.run.id": "\(run.runID)"])
            return settlement.ack()
        }
        settlement.ack()
        await cancelWaitingIfMarked(run, event: event, definition: self.definition)
        AgentryMetrics.approvalRequested(agent: agentID)
        logger.info(
            "run waits for an approval",
            metadata: [
                "agentry.run.id": "\(run.runID)", "agentry.approval.id": "\(approval.approvalID)", "agentry.permission": "\(approval.permission)",
            ])
        await announcedStart?.value
        await context.announce(
            event.followUp(type: "approval.requested", payload: ApprovalControl.payload(approval), priority: .high, source: context.source))
    }

    /// The decision as the resumed handler gets it (`"approval"`).
    static func approvalJSON(_ approval: ApprovalRecord) -> JSONValue {
        var object = ApprovalControl.payload(approval)
        if let then = approval.then, let value = try? JSON.parse(Array(then.utf8)) { object["then"] = value }
        return .object(object)
    }
}
