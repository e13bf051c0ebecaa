import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Concluding a run: its outcome recorded and announced, its delivery settled (acked, retried later, parked or
/// requeued).
extension AgentRunner {
    func conclude(
        run: TaskRun, event: Event, settlement: Settlement, definition: AgentDefinition,
        outcome: HandlerOutcome, cancelReason: CancelReason?, elapsed: Duration,
        announcedStart: Task<Void, Never>?, direct: DirectDelivery? = nil
    ) async {
        // Lifecycle events are announcements of what the run records say: they are published after the outcome is
        // recorded and the delivery acked, so that waiting for their confirms holds neither a slot nor the
        // prefetch window. (A worker that dies in between leaves the run recorded but not announced.)
        let result = outcome.result.map(JSON.serialize)
        let milliseconds = elapsed.inMilliseconds
        // What this step used goes with the run: the statements that make it wait (for its children, for an approval)
        // record it from there; the others take it from the outcome.
        var staged = run
        staged.usage = outcome.usage
        let run = staged
        switch outcome.status {
        case .succeeded:
            if let request = outcome.approvalRequest {
                return await requestApproval(
                    request, origin: .handler, run: run, event: event, settlement: settlement, result: result, announcedStart: announcedStart)
            }
            if let delegation = outcome.delegation {
                await delegate(
                    delegation, run: run, event: event, settlement: settlement, definition: definition, outcome: outcome,
                    elapsed: elapsed, announcedStart: announcedStart)
                return
            }
            // Follow-ups first, with ids derived from this agent and event: should the worker die before the run
            // is recorded, the run again publishes the same ids, which the log and the agents' runs dedupe.
            await publishFollowUps(outcome, of: run, event)
            // agent.task.completed is logged with the outcome, in the same statement, and published after it.
            var completed: Event?
            if definition.config.taskEvents {
                var payload = lifecyclePayload(run, event)
                payload["duration_ms"] = .int(milliseconds)
                if let value = outcome.result { payload["result"] = value }
                completed = event.followUp(type: "agent.task.completed", payload: payload, priority: .normal, source: context.source)
            }
            let announcement = completed
            let recorded = await persist("record the run's outcome") {
                try await self.context.finish(
                    run,
                    .init(
                        state: .succeeded, result: result, output: outcome.output,
                        stderr: outcome.stderr, exitStatus: outcome.exitStatus, usage: outcome.usage, announcement: announcement))
            }
            // Acked only once the outcome is committed; unrecorded (the worker stops), the event goes back.
            guard recorded != nil else { return settlement.release() }
            settlement.ack()
            if recorded == true { await reportToParent(run, event, state: .succeeded, result: result, message: nil) }
            await announcedStart?.value
            if recorded == true, let completed {
                await context.announceLogged(completed)
            }

        case .failed, .timedOut:
            let state: TaskRun.State = outcome.status == .timedOut ? .timedOut : .failed
            let policy = definition.effectiveRetry
            let message = outcome.message ?? "the handler failed"
            // A resumed run's step is not tried again: the retry would start the run afresh and delegate anew.
            if definition.config.autoRetry, outcome.retryable, run.steps == 1, run.attempt < policy.attempts {
                let delay = Self.jittered(policy.backoff.delay(afterAttempt: run.attempt), jitter: context.options.retryJitter)
                let due = Date().addingTimeInterval(delay)
                let recorded = await persist("record the failed attempt") {
                    try await self.context.finish(
                        run,
                        .init(
                            state: state, result: result, output: outcome.output, stderr: outcome.stderr,
                            exitStatus: outcome.exitStatus, message: message, retryAt: due, usage: outcome.usage))
                }
                let scheduled: Bool? = await persist("schedule the retry") {
                    try await self.scheduleRetry(event, attempt: run.attempt + 1, delaySeconds: delay, direct: direct)
                    return true
                }
                guard recorded != nil, scheduled != nil else { return settlement.release() }
                logger.info(
                    "run failed; retrying later",
                    metadata: [
                        "agentry.run.id": "\(run.runID)", "agentry.attempt": "\(run.attempt)",
                        "agentry.retry.in_s": "\(String(format: "%.2f", delay))",
                        "error": "\(message)",
                    ])
                settlement.ack()
                return
            }
            let attempts = definition.config.autoRetry ? policy.attempts : 1
            let final =
                run.steps > 1
                ? "\(message) (step \(run.steps), after its children; a resumed run is not retried)"
                : outcome.retryable
                    ? "\(message) (attempt \(run.attempt) of \(attempts))"
                    : "\(message) (attempt \(run.attempt); not retried, as another attempt would fail the same way)"
            let recorded = await persist("record the failed run") {
                try await self.context.finish(
                    run,
                    .init(
                        state: state, result: result, output: outcome.output, stderr: outcome.stderr,
                        exitStatus: outcome.exitStatus, message: final, usage: outcome.usage))
            }
            guard recorded != nil else { return settlement.release() }
            guard
                await park(
                    settlement.delivery, event: event, ack: !settlement.handedOver, reason: state == .timedOut ? "task-timed-out" : "task-failed",
                    message: final)
            else {
                return settlement.release()
            }
            await reportToParent(run, event, state: state == .timedOut ? .timedOut : .failed, result: result, message: final)
            await announcedStart?.value
            var payload = lifecyclePayload(run, event)
            payload["error"] = .string(final)
            payload["state"] = .string(state.rawValue)
            payload["attempts"] = .int(Int64(run.attempt))
            // Failures are announced even when per-task events are off: they need someone's attention.
            await context.announce(event.followUp(type: "agent.task.failed", payload: payload, priority: .high, source: context.source))
            logger.warning("run failed for good; event parked in agentry.dead", metadata: ["agentry.run.id": "\(run.runID)", "error": "\(final)"])

        case .cancelled:
            switch cancelReason {
            case .operatorRequest(let who)?:
                let recorded = await persist("record the cancelled run") {
                    try await self.context.finish(
                        run,
                        .init(
                            state: .cancelled, output: outcome.output, stderr: outcome.stderr,
                            exitStatus: outcome.exitStatus, message: "cancelled by \(who)", usage: outcome.usage))
                }
                guard recorded != nil else { return settlement.release() }
                settlement.ack()
                await reportToParent(run, event, state: .cancelled, result: nil, message: "cancelled by \(who)")
            case .cancelledByEvent(let eventID, let description)?:
                let recorded = await persist("record the run cancelled by an event") {
                    try await self.context.finish(
                        run,
                        .init(
                            state: .cancelled, output: outcome.output, stderr: outcome.stderr,
                            exitStatus: outcome.exitStatus, message: "cancelled by \(description)"))
                }
                guard recorded != nil else { return settlement.release() }
                await persist("note the event that cancelled the run") {
                    try await self.context.store.cancelOn.noteCancelled(runID: run.runID, by: eventID)
                }
                settlement.ack()
                await reportToParent(run, event, state: .cancelled, result: nil, message: "cancelled by \(description)")
            case .workerLost?:
                // Recorded as cancelled over the `lost` the other worker wrote (or over `running`, should the row have
                // been marked lost by hand), which also gives back a slot still held; then the event goes back.
                await persist("record the run stopped because its worker was declared lost") {
                    try await self.context.finish(
                        run,
                        .init(
                            state: .cancelled, output: outcome.output, stderr: outcome.stderr, exitStatus: outcome.exitStatus,
                            message: "stopped: worker \(self.context.workerID) was declared lost by another worker; the event went back to the queue")
                    )
                }
                await settlement.requeue()
            case .returnToQueue(let why)?:
                await persist("record the interrupted run") {
                    try await self.context.finish(
                        run,
                        .init(
                            state: .cancelled, output: outcome.output, stderr: outcome.stderr,
                            exitStatus: outcome.exitStatus, message: "\(why); the event went back to the queue"))
                }
                await settlement.requeue()
            case nil:
                await persist("record the cancelled run") {
                    try await self.context.finish(run, .init(state: .cancelled, message: outcome.message))
                }
                await settlement.requeue()
            }
        }
    }

    /// The run's `agent.task.started`, which its claim logs.
    func startedEvent(_ run: TaskRun, _ event: Event) -> Event {
        event.followUp(
            type: "agent.task.started", payload: lifecyclePayload(run, event) + ["attempt": .int(Int64(run.attempt))],
            priority: .normal, source: context.source)
    }

    func lifecyclePayload(_ run: TaskRun, _ event: Event) -> JSONObject {
        [
            "instance_id": run.instanceID.map { .string($0.uuidString.lowercased()) } ?? .null,
            "task_id": .string(run.runID.uuidString.lowercased()),
            "run_id": .string(run.runID.uuidString.lowercased()),
            "agent_id": .string(agentID),
            "event_id": .string(event.id.rawValue),
            "event_type": .string(event.type),
            "worker_id": .string(context.workerID),
        ]
    }

    /// Publishes the event again, to come back to this agent's queue after `delaySeconds`, at its priority.
    func scheduleRetry(_ event: Event, attempt: Int, delaySeconds: Double, direct: DirectDelivery? = nil) async throws {
        // 100 ms buckets: every message of one delay queue waits the same time.
        let milliseconds = max(100, Int((delaySeconds * 10).rounded()) * 100)
        let connection = context.connection
        _ = try await connection.declare(Topology.delayQueue(milliseconds: milliseconds))
        try await connection.bind(Topology.delayBinding(milliseconds: milliseconds))
        var message = EventBus.message(for: event)
        message.exchange = Topology.delayExchange
        message.routingKey = "agentry.agent.\(agentID)"
        // A delegated task's retry is still that task (a resume is never retried: see `conclude`).
        message.properties.headers = (direct?.headers ?? [:]).merging([
            DeadLetters.Header.attempt: .int(Int64(attempt)),
            DeadLetters.Header.delay: .string(String(milliseconds)),
        ]) { _, new in new }
        message.mandatory = true
        try await context.retryChannel.publish(message)
    }

    /// Parks the delivery in `agentry.dead` and acks it once the broker confirmed the copy. Returns false, the
    /// delivery unsettled, when the worker stopped first.
    @discardableResult
    func park(_ delivery: AMQPDelivery, event: Event?, ack: Bool = true, reason: String, message: String) async -> Bool {
        let queue = "agentry.agent.\(agentID)"
        guard
            await persist(
                "park the event in agentry.dead",
                {
                    try await self.context.dead.park(
                        delivery, reason: reason, message: message, queue: queue,
                        replayTo: event == nil ? nil : ("", queue), event: event)
                }) != nil
        else { return false }
        if ack { delivery.ack() }
        return true
    }

    /// Gives a delivery back to its queue unacknowledged: what could not be recorded is done again by whichever worker
    /// receives it next (every write on the way is idempotent).
    func release(_ delivery: AMQPDelivery) {
        delivery.reject(requeue: true)
    }

    /// Runs `body` until it succeeds: a write that records an outcome must not be skipped (the delivery stays
    /// unacked meanwhile). Gives up only when the worker is cancelled; returns nil then.
    @discardableResult
    func persist<T: Sendable>(_ what: String, _ body: @Sendable () async throws -> T) async -> T? {
        var delay = Duration.milliseconds(200)
        while true {
            do {
                return try await body()
            } catch {
                if Task.isCancelled { return nil }
                logger.warning("cannot \(what); trying again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    static func + (lhs: Self, rhs: Self) -> Self { lhs.merging(rhs) { _, new in new } }
}
