import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime

/// Task runs: list, show (with everything its page shows), its whole output, cancel, retry.
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
        let runtime = dependencies.runtime
        guard let run = try await runtime.run(id: id) else { throw AdminError.notFound("no run \(id.uuidString.lowercased())") }
        async let children = runtime.delegations.children(of: id)
        async let facts = runtime.attemptFacts(of: run)
        async let locks = dependencies.locks.locks(of: id)
        let attempts = try await facts
        let event = try await RunRetry(store: runtime, eventLog: dependencies.eventLog, bus: dependencies.bus).event(of: run, attempts)
        // Its agent's own follow-ups come from the attempt whose handler succeeded (an agent completes an event once).
        let handlerSucceeded = [TaskRun.State.succeeded, .waiting, .resuming].contains(run.state) || run.steps > 1
        var followUps: [Event] = []
        if let event { followUps = try await dependencies.eventLog.followUps(of: run, cause: event, handlerSucceeded: handlerSucceeded).map(\.event) }
        let detail = RunDetail(
            run: run, children: try await children, event: event, facts: attempts, locks: try await locks, followUps: followUps)
        return .ok(.init(body: .json(Representation.runDetail(detail))))
    }

    func getRunOutput(_ input: Operations.GetRunOutput.Input) async throws -> Operations.GetRunOutput.Output {
        let id = try uuid(input.path.runId, "run_id")
        guard let run = try await dependencies.runtime.run(id: id) else { throw AdminError.notFound("no run \(id.uuidString.lowercased())") }
        let stderr = input.query.stream == .stderr
        guard let text = stderr ? run.stderr : run.output else {
            throw AdminError.notFound("run \(id.uuidString.lowercased()) kept no \(stderr ? "stderr" : "output")")
        }
        return .ok(.init(body: .plainText(HTTPBody(text))))
    }

    func retryRun(_ input: Operations.RetryRun.Input) async throws -> Operations.RetryRun.Output {
        let id = try uuid(input.path.runId, "run_id")
        let retried = try await RunRetry(store: dependencies.runtime, eventLog: dependencies.eventLog, bus: dependencies.bus).retry(runID: id)
        dependencies.logger.info(
            "run retried from the admin API",
            metadata: [
                "agentry.run.id": "\(id)", "agentry.event.id": "\(retried.eventID)", "agentry.attempt": "\(retried.attempt)",
                "agentry.by": "\(AdminRequest.current.head.authority ?? "local")",
            ])
        return .accepted(
            .init(
                body: .json(
                    .init(
                        runId: id.uuidString.lowercased(), agentId: retried.agentID, eventId: retried.eventID, attempt: retried.attempt,
                        copy: retried.copy, message: retried.message))))
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
