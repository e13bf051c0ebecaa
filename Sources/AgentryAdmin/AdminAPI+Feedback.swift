import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes

/// Feedback on runs, and the per-version statistics it feeds.
extension AdminAPI {
    func giveRunFeedback(_ input: Operations.GiveRunFeedback.Input) async throws -> Operations.GiveRunFeedback.Output {
        let id = try uuid(input.path.runId, "run_id")
        let body =
            switch input.body {
            case .json(let json): json
            }
        let feedback: RunFeedback
        do {
            feedback = try RunFeedback(rating: body.rating, label: body.label, comment: body.comment)
        } catch {
            throw AdminError.badRequest(error.message)
        }
        let by = "admin API (\(AdminRequest.current.head.authority ?? "local"))"
        do {
            guard let record = try await dependencies.feedback.record(feedback, runID: id, by: by) else {
                throw AdminError.internalError("the feedback on run \(id.uuidString.lowercased()) was not recorded")
            }
            AgentryMetrics.feedbackRecorded(from: "api")
            return .created(.init(body: .json(Representation.feedback(record))))
        } catch let refused as FeedbackRefused {
            throw Self.adminError(refused)
        }
    }

    func listRunFeedback(_ input: Operations.ListRunFeedback.Input) async throws -> Operations.ListRunFeedback.Output {
        let id = try uuid(input.path.runId, "run_id")
        do {
            let records = try await dependencies.feedback.feedback(onRun: id)
            return .ok(.init(body: .json(.init(feedback: records.map(Representation.feedback), count: records.count))))
        } catch let refused as FeedbackRefused {
            throw Self.adminError(refused)
        }
    }

    func getAgentStats(_ input: Operations.GetAgentStats.Input) async throws -> Operations.GetAgentStats.Output {
        let id = input.path.agentId
        let (state, stats) = try await dependencies.registry.stats(agentID: id)
        return .ok(.init(body: .json(Representation.agentStats(agentID: id, stats, state: state))))
    }

    /// 404 for a run that does not exist, 409 for one that cannot take feedback.
    static func adminError(_ refused: FeedbackRefused) -> AdminError {
        switch refused.reason {
        case .unknownRun: AdminError.notFound(refused.message)
        case .notFinished, .collectionOff: AdminError.conflict(refused.message)
        }
    }
}
