import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes

/// Task runs: list, show, cancel.
extension AdminAPI {
    func listRuns(_ input: Operations.ListRuns.Input) async throws -> Operations.ListRuns.Output {
        let query = input.query
        let state = try query.state.map { value in
            guard let state = TaskRun.State(rawValue: value.rawValue) else {
                throw AdminError.badRequest(
                    "state '\(value.rawValue)' is not one of \(TaskRun.State.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return state
        }
        if let event = query.eventId, EventID(event) == nil { throw AdminError.badRequest("event_id '\(event)' is not an event id (1 to 255 bytes)") }
        let runs = try await dependencies.runtime.runs(
            agentID: query.agentId, eventID: query.eventId, state: state,
            limit: try limit(query.limit, default: 50))
        return .ok(.init(body: .json(.init(runs: runs.map(Representation.run), count: runs.count))))
    }

    func getRun(_ input: Operations.GetRun.Input) async throws -> Operations.GetRun.Output {
        let id = try uuid(input.path.runId, "run_id")
        guard let run = try await dependencies.runtime.run(id: id) else { throw AdminError.notFound("no run \(id.uuidString.lowercased())") }
        let children = try await dependencies.runtime.delegations.children(of: id)
        return .ok(.init(body: .json(Representation.run(run, children: children))))
    }

    func reportRunProgress(_ input: Operations.ReportRunProgress.Input) async throws -> Operations.ReportRunProgress.Output {
        let id = try uuid(input.path.runId, "run_id")
        let body =
            switch input.body {
            case .json(let json): json
            }
        guard try await dependencies.runtime.run(id: id) != nil else { throw AdminError.notFound("no run \(id.uuidString.lowercased())") }
        guard try await dependencies.runtime.reportProgress(id, JSON.serialize(body.progress)) else {
            throw AdminError.conflict("run \(id.uuidString.lowercased()) is not running; progress is kept for running runs only")
        }
        return .ok(.init(body: .json(.init(runId: id.uuidString.lowercased(), message: "Progress kept"))))
    }

    func cancelRun(_ input: Operations.CancelRun.Input) async throws -> Operations.CancelRun.Output {
        let id = try uuid(input.path.runId, "run_id")
        let run = try await dependencies.control.cancel(runID: id, by: "admin API (\(AdminRequest.current.head.authority ?? "local"))")
        let what = run.state == .running ? "cancelling the running task" : "dropping the retry it waits for"
        return .ok(.init(body: .json(.init(runId: id.uuidString.lowercased(), message: "Run cancelled: \(what)"))))
    }
}
