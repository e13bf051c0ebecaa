import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Testing

/// What an operator's retry of a run does, from the run and its event's other attempts (`RunRetry.decide`).
@Suite("Run retry decisions")
struct RunRetryDecisionTests {
    func run(_ attempt: Int, _ state: TaskRun.State, retryAt: Date? = nil) -> TaskRun {
        TaskRun(
            runID: UUID(), agentID: "a", agentVersion: "1.0.0", eventID: "e", eventType: "t", priority: .normal, workerID: "w",
            instanceID: nil, attempt: attempt, state: state, eventAt: nil, retryAt: retryAt)
    }

    @Test("a failed event is tried again as its next attempt; a completed one as a copy")
    func attemptOrCopy() {
        let first = run(1, .failed, retryAt: Date())
        let second = run(2, .failed)
        #expect(RunRetry.decide(second, .init(attempts: [first, second])) == .attempt(3))
        #expect(RunRetry.decide(first, .init(attempts: [first, second])) == .attempt(3), "any attempt retries the event")
        let done = run(2, .succeeded)
        #expect(RunRetry.decide(done, .init(attempts: [first, done])) == .copy)
        #expect(RunRetry.decide(first, .init(attempts: [first, done])) == .copy)
        let cancelled = run(1, .failed, retryAt: Date())
        #expect(RunRetry.decide(cancelled, .init(attempts: [cancelled], retryCancelled: [cancelled.runID])) == .copy, "its retry was cancelled")
        #expect(RunRetry.decide(run(1, .lost), .init(attempts: [])) == .attempt(2))
    }

    @Test("refused while it or another attempt has not finished, while its retry is due, and for a delegated task")
    func refusals() {
        let running = run(1, .running)
        guard case .refused(let why) = RunRetry.decide(running, .init(attempts: [running])) else {
            Issue.record("a running run is not retried")
            return
        }
        #expect(why.contains("has not finished"))
        let failed = run(1, .failed)
        let again = run(2, .deferred)
        #expect(RunRetry.decide(failed, .init(attempts: [failed, again])) != .attempt(3))
        let waiting = run(1, .timedOut, retryAt: Date().addingTimeInterval(30))
        #expect(RunRetry.decide(waiting, .init(attempts: [waiting])) != .attempt(2), "its retry is on its way")
        #expect(RunRetry.cancellable(waiting, .init(attempts: [waiting])), "that retry can be cancelled")
        var child = run(1, .failed)
        child.parentRunID = UUID()
        if case .refused(let why) = RunRetry.decide(child, .init(attempts: [child])) {
            #expect(why.contains("retry the root run"))
        } else {
            Issue.record("a delegated task is retried with its root")
        }
    }
}
