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
        if let agent = query.agent, let agentID = query.agentId, agent != agentID {
            throw AdminError.badRequest("agent '\(agent)' and agent_id '\(agentID)' differ: give one")
        }
        let search = RunSearch(
            agent: try nonEmpty(query.agent ?? query.agentId, "agent"), eventID: query.eventId, state: state, type: try typeMatch(query._type),
            priority: try priorityFilter(query.priority), since: try time(query.since, "since"), until: try time(query.until, "until"),
            text: try searchText(query.q), cursor: try cursor(query.cursor, .runs))
        try checkRange(search.since, search.until)
        let page = try await dependencies.runtime.search(search, limit: try limit(query.limit, default: 50))
        return .ok(
            .init(
                body: .json(
                    .init(runs: page.items.map(Representation.run), count: page.items.count, nextCursor: page.next.map { .string($0.token) } ?? .null)
                )))
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
