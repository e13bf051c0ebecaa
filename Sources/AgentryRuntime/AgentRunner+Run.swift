import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Running a delivery's event: a skipped run recorded, or a run claimed, its handler run holding its resources, and
/// the run concluded; long runs handed over.
extension AgentRunner {
    /// Handles one delivery, in a task of its own.
    func handle(_ incoming: Incoming) async {
        var received: Received
        switch incoming {
        case .undecodable(let delivery, let error):
            if !(await park(delivery, event: nil, reason: error.reason.description, message: error.message)) { release(delivery) }
            return
        case .event(let event):
            received = event
        }
        if case .resume(let runID, _)? = received.direct {
            await resume(received, runID: runID)
            return
        }
        if let reason = received.skipReason {
            await skip(received, reason: reason)
            return
        }
        guard let pinned = await atPinnedVersion(received) else { return }
        received = pinned
        if received.direct == nil, let window = received.definition.flow?.debounceSeconds {
            return await debounce(received, window: window)
        }
        guard var claimed = await claim(received) else { return }
        if case .child(let origin)? = received.direct {
            claimed.run.parentRunID = origin.parent
            claimed.run.rootRunID = origin.root
            claimed.run.depth = origin.depth
            claimed.run.task = origin.task
            let run = claimed.run
            await persist("link the child run to its parent") {
                try await self.context.store.delegations.link(
                    child: run, parent: origin.parent, position: origin.position, root: origin.root, depth: origin.depth, task: origin.task)
            }
        }
        if await cancelledAtClaim(claimed.run, received, announcement: claimed.announcement) { return }
        await start(claimed.run, received, announcement: claimed.announcement)
    }

    /// A claimed run past its gates (flow control, budgets; deferred when it must wait), then its approval (when
    /// the definition asks for one before every run), then its handler. `announcement` is its `agent.task.started` as
    /// the claim logged it; a gated run's is published here once it passed.
    func start(_ run: TaskRun, _ received: Received, announcement: Event?, restarted: Bool = false) async {
        var claimed = (run: run, announcement: announcement)
        if isGated(received.definition) {
            guard let passed = await passGates(run, received, restarted: restarted) else { return }
            claimed.run = passed
            if received.definition.config.taskEvents { await context.announce(startedEvent(passed, received.event)) }
        }
        let needed = received.definition.approvalBeforeRun
        if !needed.isEmpty {
            // The definition asks for an approval before every run: the run waits for it without its handler started.
            let request = ApprovalRequest(
                permission: needed.joined(separator: ","),
                reason: "\(agentID) uses \(needed.joined(separator: ", ")), which its approval_required_for lists")
            let settlement = Settlement(
                delivery: received.delivery, handedOver: false, event: received.event, queue: received.definition.queueName,
                channel: context.retryChannel)
            var announcedStart: Task<Void, Never>?
            if let announcement = claimed.announcement {
                let context = self.context
                announcedStart = Task { await context.announceLogged(announcement) }
            }
            await requestApproval(
                request, origin: .definition, run: claimed.run, event: received.event, settlement: settlement, result: nil,
                announcedStart: announcedStart)
            return
        }
        await execute(claimed.run, received, announcement: claimed.announcement)
    }

    /// Records the event's run as skipped (no trigger matched) and acks its delivery.
    private func skip(_ received: Received, reason: String) async {
        var run = received.run
        run.state = .skipped
        run.message = reason
        AgentryMetrics.consumed(received.event, by: agentID)
        AgentryMetrics.runFinished(agent: agentID, outcome: "skipped", seconds: nil)
        let skipped = run
        guard await persist("record a skipped run", { try await self.context.store.recordSkipped(skipped) }) != nil else {
            return release(received.delivery)
        }
        received.delivery.ack()
    }

    /// Runs a claimed run's handler, holding its resources, and concludes the run; `announcement` (its
    /// `agent.task.started`, logged by the claim) is published meanwhile.
    func execute(_ run: TaskRun, _ received: Received, announcement: Event?, children: JSONValue? = nil, approval: JSONValue? = nil) async {
        let delivery = received.delivery
        let definition = received.definition
        let event = received.event
        let started = ContinuousClock.now
        AgentryMetrics.consumed(event, by: agentID)
        // A resume's event was published long before: only a run's first step measures the wait for a worker.
        if run.steps == 1 { AgentryMetrics.runStarted(agent: agentID, publishToStart: Date().timeIntervalSince(event.timestamp)) }
        var taskContext = TaskContext(
            runID: run.runID, agent: definition, event: event, attempt: run.attempt,
            workerID: context.workerID, instanceID: run.instanceID,
            timeout: .seconds(definition.config.timeoutSeconds), killGrace: context.options.killGrace,
            outputLimit: context.options.outputLimit)
        taskContext.step = run.steps
        taskContext.children = children
        if case .exec? = definition.handler, let key = context.runTokenKey {
            // Valid as long as the run may last (its timeout and the kill grace), and a minute for its last calls.
            let expiresAt = Date().addingTimeInterval(taskContext.timeout.inSeconds + context.options.killGrace.inSeconds + 60)
            taskContext.runToken = RunToken(
                runID: run.runID, agentID: agentID, subagents: definition.referencedSubagents.map(\.id),
                grants: definition.grantedPermissions, expiresAt: expiresAt
            ).signed(with: key)
            taskContext.adminURL = context.options.adminURL
        }
        taskContext.approval = approval
        if case .child(let origin)? = received.direct {
            taskContext.tree = origin
        } else if let parent = run.parentRunID {
            // A child resumed after its own children: where it sits, from its record.
            taskContext.tree = DirectDelivery.ChildOrigin(
                parent: parent, position: 0, root: run.rootRunID ?? parent, depth: run.depth, task: run.task ?? "", version: run.agentVersion)
        }
        let task = Task { [taskContext] in await self.runHoldingResources(taskContext) }
        let cancelledEarly = state.withLockedValue { s -> Bool in
            var running = Running(task: task, event: event, delivery: delivery, started: started)
            // Its cancellation by event arrived while it was being claimed: it stops as it starts.
            running.cancelReason = s.cancelledEarly.removeValue(forKey: run.runID)?.reason
            s.running[run.runID] = running
            s.lastRun = run.runID
            s.instanceDirty = true
            return running.cancelReason != nil
        }
        if cancelledEarly { task.cancel() }
        // Announced while the handler already runs; awaited before agent.task.completed or failed is published, so
        // that it always comes first.
        var announcedStart: Task<Void, Never>?
        if let announcement {
            let context = self.context
            announcedStart = Task { await context.announceLogged(announcement) }
        }
        var outcome = await task.value
        let (cancelReason, handover) = state.withLockedValue { s -> (CancelReason?, Task<Bool, Never>?) in
            let running = s.running.removeValue(forKey: run.runID)
            s.instanceDirty = true
            return (running?.cancelReason, running?.handover)
        }
        // A hand-over under way finishes first: its outcome says how the delivery is settled.
        let handedOver = await handover?.value ?? false
        if outcome.status == .cancelled, cancelReason == nil {
            outcome.message = outcome.message ?? "cancelled"
        }
        let elapsed = ContinuousClock.now - started
        let outcomeName: String
        switch outcome.status {
        case .succeeded: outcomeName = "succeeded"
        case .failed: outcomeName = "failed"
        case .timedOut: outcomeName = "timed_out"
        case .cancelled: outcomeName = "cancelled"
        }
        AgentryMetrics.runFinished(agent: agentID, outcome: outcomeName, seconds: elapsed.inSeconds)
        if let usage = outcome.usage { AgentryMetrics.usage(agent: agentID, usage) }
        let settlement = Settlement(
            delivery: delivery, handedOver: handedOver, event: event,
            queue: definition.queueName, channel: context.retryChannel)
        await conclude(
            run: run, event: event, settlement: settlement, definition: definition, outcome: outcome,
            cancelReason: cancelReason, elapsed: elapsed, announcedStart: announcedStart, direct: received.direct)
        if run.budgets != nil || run.flowKey != nil { await afterRun(run, definition: definition, outcome: outcome) }
    }

    /// A run that outlives the ack deadline (under the broker's consumer timeout) is handed over: its event is kept
    /// with the run and its delivery acked, so the broker neither redelivers it nor closes the channel. One loop per
    /// instance looks for such runs every quarter of the deadline (at most every 10 s), instead of a timer per run.
    func handOverLongRuns() async {
        let deadline = context.options.ackDeadline
        let interval = max(.milliseconds(10), min(deadline / 4, .seconds(10)))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = ContinuousClock.now
            let due = state.withLockedValue { s -> [Task<Bool, Never>] in
                var due: [Task<Bool, Never>] = []
                for (runID, running) in s.running where running.handover == nil && now - running.started >= deadline {
                    let handover = Task { await self.handOver(runID, event: running.event, delivery: running.delivery) }
                    s.running[runID]?.handover = handover
                    due.append(handover)
                }
                return due
            }
            for handover in due { _ = await handover.value }
        }
    }

    private func handOver(_ runID: UUID, event: Event, delivery: AMQPDelivery) async -> Bool {
        let envelope = String(decoding: EventWireFormat.encode(event), as: UTF8.self)
        guard (try? await context.store.handOver(runID, event: envelope)) == true else { return false }
        delivery.ack()
        logger.info("long run handed over: delivery acked, event kept with the run", metadata: ["agentry.run.id": "\(runID)"])
        return true
    }
}
