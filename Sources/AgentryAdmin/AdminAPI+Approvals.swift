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

    private func decide(_ text: String, approve: Bool, comment: String?) async throws -> JSONValue {
        let id = try uuid(text, "approval_id")
        let who = AdminIdentity.current.describe(authority: AdminRequest.current.head.authority)
        return Representation.approval(try await approvals.decide(id, approve: approve, by: who, comment: comment))
    }
}
