import AgentryCore
import AgentryStore
import Foundation
import NIOConcurrencyHelpers

extension AgentRunner {
    /// Runs the handler holding the resources the agent declares (`resources`, filled from the event): all or
    /// nothing, in one global order, waiting at the event's priority without holding any of them meanwhile; given
    /// back when the handler ends, whatever the outcome. A run whose hold is lost (expired, its session ended) is
    /// stopped at once rather than left to go on unguarded, and fails with the reason.
    func runHoldingResources(_ task: TaskContext) async -> HandlerOutcome {
        let handlers = context.handlers
        guard !task.agent.resources.isEmpty else { return await handlers.run(task) }
        let resources: [ResourceKey]
        switch ResourceKey.resources(of: task.agent, for: task.event) {
        case .success(let keys): resources = keys
        case .failure(let problem): return .failed("cannot name the resources to lock: \(problem)")
        }
        if let problem = resources.lazy.compactMap({ $0.permissionProblem(for: task.agent) }).first {
            return .failed("refused: \(problem)")
        }
        let handler = NIOLockedValueBox<(task: Task<HandlerOutcome, Never>?, loss: LockLoss?)>((nil, nil))
        let hold: LockHold
        do {
            // The hold outlasts the handler's timeout and the kill grace: it only expires when the worker fails to
            // stop the task (then a waiter takes it back).
            hold = try await context.locks.acquire(
                resources, owner: .agent(task.agent.metadata.id), priority: task.event.priority,
                hold: task.timeout + task.killGrace + .seconds(30), wait: context.options.lockWait, runID: task.runID,
                cause: task.event
            ) { loss in
                let running = handler.withLockedValue { h -> Task<HandlerOutcome, Never>? in
                    h.loss = loss
                    return h.task
                }
                running?.cancel()
            }
        } catch is CancellationError {
            return HandlerOutcome(status: .cancelled, message: "cancelled while waiting for \(resources.map(\.description).joined(separator: ", "))")
        } catch let error as LockError where error.code == .shutDown {
            return HandlerOutcome(status: .cancelled, message: error.message)
        } catch {
            if Task.isCancelled {
                return HandlerOutcome(
                    status: .cancelled, message: "cancelled while waiting for \(resources.map(\.description).joined(separator: ", "))")
            }
            return .failed("\(error)")
        }
        var guarded = task
        guarded.fencingTokens = hold.fencingTokens
        let run = Task { [guarded] in await handlers.run(guarded) }
        let lostAlready = handler.withLockedValue { h -> Bool in
            h.task = run
            return h.loss != nil
        }
        if lostAlready { run.cancel() }
        var outcome = await withTaskCancellationHandler {
            await run.value
        } onCancel: {
            run.cancel()
        }
        await context.locks.release(hold)
        if let loss = handler.withLockedValue({ $0.loss }) {
            outcome.status = .failed
            outcome.message = "stopped because \(loss) (fencing token \(hold.fencingToken)); it must not go on unguarded"
            outcome.followUps = []
        }
        return outcome
    }
}
