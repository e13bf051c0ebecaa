import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes

/// Approvals: listed, shown, approved, rejected.
extension AdminAPI {
    var approvals: ApprovalControl { ApprovalControl(store: dependencies.runtime, bus: dependencies.bus, logger: logger) }

    func listApprovals(_ input: Operations.ListApprovals.Input) async throws -> Operations.ListApprovals.Output {
        let state = input.query.state.flatMap { ApprovalRecord.State(rawValue: $0.rawValue) }
        let found = try await dependencies.runtime.approvals.list(state: state, limit: try limit(input.query.limit, default: 100))
        return .ok(.init(body: .json(.init(approvals: found.map(Representation.approval), count: found.count))))
    }

    func getApproval(_ input: Operations.GetApproval.Input) async throws -> Operations.GetApproval.Output {
        let id = try uuid(input.path.approvalId, "approval_id")
        guard let approval = try await dependencies.runtime.approvals.approval(id) else {
            throw AdminError.notFound("no approval \(id.uuidString.lowercased())")
        }
        return .ok(.init(body: .json(Representation.approval(approval))))
    }

    func approveApproval(_ input: Operations.ApproveApproval.Input) async throws -> Operations.ApproveApproval.Output {
        let comment: String? =
            switch input.body {
            case .json(let body)?: body.comment
            case nil: nil
            }
        return .ok(.init(body: .json(try await decide(input.path.approvalId, approve: true, comment: comment))))
    }

    func rejectApproval(_ input: Operations.RejectApproval.Input) async throws -> Operations.RejectApproval.Output {
        let comment: String? =
            switch input.body {
            case .json(let body)?: body.comment
            case nil: nil
            }
        return .ok(.init(body: .json(try await decide(input.path.approvalId, approve: false, comment: comment))))
    }

    func requestRunApproval(_ input: Operations.RequestRunApproval.Input) async throws -> Operations.RequestRunApproval.Output {
        let id = try uuid(input.path.runId, "run_id")
        let body =
            switch input.body {
            case .json(let json): json
            }
        guard let run = try await dependencies.runtime.run(id: id) else { throw AdminError.notFound("no run \(id.uuidString.lowercased())") }
        guard run.state == .running else {
            throw AdminError.conflict("run \(id.uuidString.lowercased()) is \(run.state.rawValue); only a running run may ask for an approval")
        }
        guard let (_, definition) = try await dependencies.registry.definition(agentID: run.agentID, version: run.agentVersion) else {
            throw AdminError.notFound("version \(run.agentVersion) of \(run.agentID) is not registered")
        }
        var asked: JSONObject = ["permission": .string(body.permission)]
        if let reason = body.reason { asked["reason"] = .string(reason) }
        if let seconds = body.expiresInSeconds { asked["expires_in_seconds"] = .int(Int64(seconds)) }
        // Read as a handler's `request_approval` result is, with the same checks and messages.
        let request: ApprovalRequest
        switch ApprovalRequest.from(result: ["request_approval": .object(asked)], definition: definition) {
        case .success(let read)?: request = read
        case .failure(let problem)?: throw AdminError.badRequest(problem.description)
        case nil: throw AdminError.badRequest("not an approval request")
        }
        let approval = ApprovalRecord(
            approvalID: UUID(), runID: run.runID, agentID: run.agentID, agentVersion: run.agentVersion, permission: request.permission,
            reason: request.reason, then: nil, origin: .handler,
            expiresAt: Date().addingTimeInterval(Double(request.expiresInSeconds ?? ApprovalRequest.defaultExpirySeconds)))
        guard try await dependencies.runtime.approvals.requestWhileRunning(approval) else {
            throw AdminError.conflict("run \(id.uuidString.lowercased()) is no longer running")
        }
        try? await dependencies.bus.publish(
            Event(type: "approval.requested", payload: ApprovalControl.payload(approval), priority: .high, source: "agentry.approvals"))
        return .created(.init(body: .json(Representation.approval(approval))))
    }

    private func decide(_ text: String, approve: Bool, comment: String?) async throws -> JSONValue {
        let id = try uuid(text, "approval_id")
        let who = AdminIdentity.current.describe(authority: AdminRequest.current.head.authority)
        return Representation.approval(try await approvals.decide(id, approve: approve, by: who, comment: comment))
    }
}
