import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Run trees: a result that delegates tasks (recorded, published to the subagents, and waited for without a slot),
/// a child's end reported to its parent, a waiting run's resume, and deliveries pinned to a version.
extension AgentRunner {
    /// Publishes a successful run's follow-up events (at once, or kept until their delay is over), with ids derived
    /// from this agent, the event, the step and the position: should the worker die before the run is recorded, the
    /// run publishes the same ids again, which the log and the agents' runs take once.
    func publishFollowUps(_ outcome: HandlerOutcome, of run: TaskRun, _ event: Event) async {
        for (index, followUp) in outcome.followUps.enumerated() {
            var derived = followUp.event
            var parts = [Array(agentID.utf8), Array(event.id.rawValue.utf8), Array(String(index).utf8)]
            if run.steps > 1 { parts.append(Array("step \(run.steps)".utf8)) }
            derived.id = EventID.derived(from: parts)
            if let delay = followUp.delaySeconds, delay > 0 {
                // Kept until its time, under the same derived id (kept once however often this runs).
                let deliverAt = Date().addingTimeInterval(delay)
                derived.timestamp = deliverAt
                let stable = derived
                await persist("keep a delayed follow-up event") { _ = try await self.context.delayed.add(stable, deliverAt: deliverAt) }
            } else {
                let stable = derived
                await persist("publish a follow-up event") { try await self.context.bus.publish(stable) }
            }
        }
    }

    /// A successful result that delegates: each task resolved to a subagent version, recorded with the run (which,
    /// when it awaits them, waits in the same transaction, its slot given back), published to the subagents' queues,
    /// and the delivery acked. Without `await` the run then succeeds as any other. A delegation that cannot go ahead
    /// (too deep, too wide, no subagent fits) fails the run for good, saying why.
    func delegate(
        _ delegation: Delegation, run: TaskRun, event: Event, settlement: Settlement, definition: AgentDefinition,
        outcome: HandlerOutcome, elapsed: Duration, announcedStart: Task<Void, Never>?
    ) async {
        func fail(_ problem: DelegationProblem) async {
            var failed = outcome
            failed.status = .failed
            failed.delegation = nil
            failed.retryable = false
            failed.message = "cannot delegate: \(problem)"
            await conclude(
                run: run, event: event, settlement: settlement, definition: definition, outcome: failed, cancelReason: nil,
                elapsed: elapsed, announcedStart: announcedStart)
        }
        if let problem = context.options.delegationLimits.problem(depth: run.depth, tasks: delegation.tasks.count) {
            return await fail(problem)
        }
        let subagents = Array(Set(definition.subagents.map(\.id))).sorted()
        guard
            let published = await persist(
                "read the subagents' published versions", { try await self.context.store.delegations.publishedVersions(of: subagents) })
        else { return settlement.release() }
        var choices: [SubagentResolution.Choice] = []
        for task in delegation.tasks {
            switch SubagentResolution.choose(task: task.name, for: definition, published: published) {
            case .success(let choice): choices.append(choice)
            case .failure(let problem): return await fail(problem)
            }
        }
        guard
            let (round, first) = await persist(
                "read the run's earlier children", { try await self.context.store.delegations.nextRound(of: run.runID) })
        else { return settlement.release() }
        let root = run.rootRunID ?? run.runID
        var children: [ChildRecord] = []
        var events: [Event] = []
        for (offset, (task, choice)) in zip(delegation.tasks, choices).enumerated() {
            let position = first + offset
            var child = event.followUp(
                type: task.eventType, payload: task.payload, priority: min(event.priority, task.priority ?? event.priority), source: agentID)
            // Awaited children are this run's own (a fresh run of the event delegates afresh); the others come from the
            // event, so that a run that dies before it is recorded and runs again sends the same tasks, taken once.
            child.id =
                delegation.awaiting != nil
                ? EventID.derived(from: [Array(run.runID.uuidString.utf8), Array("child \(position)".utf8)])
                : EventID.derived(from: [Array(agentID.utf8), Array(event.id.rawValue.utf8), Array("child \(round) \(position)".utf8)])
            events.append(child)
            children.append(
                ChildRecord(
                    parentRunID: run.runID, position: position, round: round, task: task.name, agentID: choice.agentID,
                    agentVersion: choice.version, versionRange: choice.range,
                    event: String(decoding: EventWireFormat.encode(child), as: UTF8.self), eventID: child.id.rawValue,
                    awaited: delegation.awaiting != nil))
        }
        let envelope = String(decoding: EventWireFormat.encode(event), as: UTF8.self)
        let result = outcome.result.map(JSON.serialize)
        let (frozenChildren, frozenEvents) = (children, events)
        guard
            let recorded = await persist(
                "record the delegated tasks",
                {
                    try await self.context.store.delegations.delegate(
                        run: run, children: frozenChildren, events: frozenEvents, wait: delegation.awaiting, round: round, event: envelope,
                        result: result)
                })
        else { return settlement.release() }
        guard recorded else {
            // No longer this worker's run (declared lost and taken over meanwhile): whoever has it now goes on.
            logger.warning("run no longer running here; its delegation is dropped", metadata: ["agentry.run.id": "\(run.runID)"])
            return settlement.ack()
        }
        let dispatches = children.map { ChildDispatch(child: $0, parentDepth: run.depth, rootRunID: root) }
        await publishChildren(dispatches)
        AgentryMetrics.delegated(agent: agentID, tasks: children.count)
        logger.info(
            delegation.awaiting == nil ? "run delegated tasks" : "run delegated tasks and waits for them",
            metadata: [
                "agentry.run.id": "\(run.runID)",
                "agentry.tasks":
                    "\(zip(children.map(\.task), children.map { "\($0.agentID)@\($0.agentVersion)" }).map { "\($0)→\($1)" }.joined(separator: ", "))",
            ])
        guard delegation.awaiting != nil else {
            var plain = outcome
            plain.delegation = nil
            return await conclude(
                run: run, event: event, settlement: settlement, definition: definition, outcome: plain, cancelReason: nil,
                elapsed: elapsed, announcedStart: announcedStart)
        }
        // Waiting: the run is recorded, its slot given back; its delivery is done with.
        await publishFollowUps(outcome, of: run, event)
        settlement.ack()
        await cancelWaitingIfMarked(run, event: event, definition: definition)
        await announcedStart?.value
    }

    /// Publishes children and marks them published; one that cannot be published now is left to the scheduler's
    /// leader, which publishes what stays unpublished.
    func publishChildren(_ dispatches: [ChildDispatch]) async {
        var published: [Int] = []
        for dispatch in dispatches {
            do {
                try await DirectDelivery.publish(dispatch, on: context.bus)
                published.append(dispatch.child.position)
            } catch {
                logger.warning(
                    "cannot publish a delegated task now; the scheduler publishes it later",
                    metadata: ["agentry.task": "\(dispatch.child.task)", "agentry.agent": "\(dispatch.child.agentID)", "error": "\(error)"])
            }
        }
        guard let parent = dispatches.first?.child.parentRunID, !published.isEmpty else { return }
        let positions = published
        try? await context.store.delegations.markPublished(parent: parent, positions: positions)
    }

    /// Records how a child run ended with its parent, and publishes the parent's resume when this woke it.
    func reportToParent(_ run: TaskRun, _ event: Event, state: ChildRecord.State, result: String?, message: String?) async {
        guard let parent = run.parentRunID else { return }
        let wake = await persist("record the child's end with its parent") {
            try await self.context.store.delegations.childEnded(
                parent: parent, eventID: event.id.rawValue, childRunID: run.runID, state: state, result: result, message: message)
        }
        guard let wake = wake ?? nil else { return }
        AgentryMetrics.runWoken(reason: "children")
        await publishResume(wake)
    }

    /// Tells the parent again how a child whose event completed already ended (recording a child's end is idempotent).
    func reportCompletedChild(_ event: Event, parent: UUID) async {
        let eventID = event.id.rawValue
        guard let runs = try? await context.store.runs(agentID: agentID, eventID: eventID, limit: 20),
            var done = runs.first(where: { $0.state == .succeeded })
        else { return }
        done.parentRunID = parent
        await reportToParent(done, event, state: .succeeded, result: done.result, message: nil)
    }

    func publishResume(_ wake: RunWake) async {
        do {
            try await DirectDelivery.publish(wake, on: context.bus)
            try await context.store.delegations.markResumePublished(wake.runID)
        } catch {
            logger.warning(
                "cannot publish a run's resume now; the scheduler publishes it later",
                metadata: ["agentry.run.id": "\(wake.runID)", "error": "\(error)"])
        }
    }

    /// A waiting run's resume: takes a slot for it (waiting while the agent is at its limit), and calls its handler
    /// again with its children's results; or, when a child failed and the run's policy is `fail`, fails it without a
    /// call. A resume for a run that is not resuming (sent twice) is acked and dropped.
    func resume(_ received: Received, runID: UUID) async {
        let delivery = received.delivery
        guard let pinned = await atPinnedVersion(received) else { return }
        let definition = pinned.definition
        var wait = Duration.milliseconds(5)
        var slotAndStep: (slot: Int, step: Int, deferred: String?)?
        while slotAndStep == nil {
            guard isTakingWork else { return delivery.reject(requeue: true) }
            let instanceID = state.withLockedValue { $0.instanceID }
            guard
                let claim = await persist(
                    "claim a run's resume",
                    {
                        try await self.context.store.delegations.claimResume(
                            runID, agentID: self.agentID, workerID: self.context.workerID, instanceID: instanceID,
                            maxParallel: definition.config.maxParallelTasks, workerExpiry: self.context.options.workerExpiry)
                    })
            else { return release(delivery) }
            switch claim {
            case .claimed(let slot, let step, let deferred):
                slotAndStep = (slot, step, deferred)
            case .busy:
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .milliseconds(100))
            case .runningElsewhere:
                try? await Task.sleep(for: .seconds(1))
            case .notResumable(let state):
                logger.info(
                    "resume of a run that is not resuming (\(state ?? "unknown run")); dropped", metadata: ["agentry.run.id": "\(runID)"])
                return delivery.ack()
            }
        }
        guard let (slot, _, deferred) = slotAndStep,
            var run = await persist("read the resumed run", { try await self.context.store.run(id: runID) }) ?? nil,
            let children = await persist("read the run's children", { try await self.context.store.delegations.lastRound(of: runID) })
        else { return release(delivery) }
        run.slot = slot
        run.workerID = context.workerID
        var resumed = pinned
        resumed.run = run
        // A cancelling event whose sweep saw the run still resuming, and not yet running here, cancels it now.
        if await cancelledAtClaim(run, resumed, announcement: nil) { return }
        if deferred != nil {
            // A deferred run's turn came: it starts (its gates checked again), as a run an event started.
            return await start(run, resumed, announcement: nil, restarted: true)
        }
        if let approval = await persist("read the approval the run waited for", { try await self.context.store.approvals.awaited(by: runID) }) ?? nil
        {
            return await execute(run, resumed, announcement: nil, approval: Self.approvalJSON(approval))
        }
        let policy = await persist("read the run's wait") { try await self.context.store.delegations.failurePolicy(of: runID) } ?? nil
        if policy == .fail, let failed = children.first(where: { $0.awaited && $0.state != .succeeded && $0.state != .pending }) {
            let outcome = HandlerOutcome.failed(
                "child \(failed.position) (task \(failed.task), \(failed.agentID) \(failed.agentVersion)) \(failed.state.rawValue): \(failed.message ?? "no message") (await on_failure: fail)",
                retryable: false)
            let settlement = Settlement(
                delivery: delivery, handedOver: false, event: received.event, queue: definition.queueName, channel: context.retryChannel)
            AgentryMetrics.runFinished(agent: agentID, outcome: "failed", seconds: nil)
            return await conclude(
                run: run, event: received.event, settlement: settlement, definition: definition, outcome: outcome, cancelReason: nil,
                elapsed: .zero, announcedStart: nil)
        }
        await execute(run, resumed, announcement: nil, children: .array(children.map(Self.childJSON)))
    }

    /// A child as its parent's handler gets it on a resume.
    static func childJSON(_ child: ChildRecord) -> JSONValue {
        var object: JSONObject = [
            "task": .string(child.task), "agent_id": .string(child.agentID), "version": .string(child.agentVersion),
            "state": .string(child.state.rawValue), "position": .int(Int64(child.position)), "event_id": .string(child.eventID),
        ]
        if let run = child.childRunID { object["run_id"] = .string(run.uuidString.lowercased()) }
        if let result = child.result, let value = try? JSON.parse(Array(result.utf8)) { object["result"] = value }
        if let message = child.message { object["message"] = .string(message) }
        return .object(object)
    }

    /// The delivery at the version it names (a delegated task, a resume, an invocation may name one other than the
    /// agent's current version; a canary's share runs at the canary, whose definition `receive` already took), its
    /// claim left to be queued by `claim`. A version that is not published (or cannot be read) parks the delivery,
    /// saying so, and tells a waiting parent; nil then.
    func atPinnedVersion(_ received: Received) async -> Received? {
        guard let version = received.pinnedVersion, version != received.definition.metadata.version else { return received }
        let cached = state.withLockedValue { $0.pinned[version] }
        var definition = cached
        if definition == nil {
            let registry = context.registry
            let agentID = self.agentID
            let loaded: Result<AgentDefinition?, any Error>? = await persist("read version \(version) of \(agentID)") {
                guard let stored = try await registry.version(version, of: agentID) else { return .success(nil) }
                guard stored.status == .published else { return .success(nil) }
                do { return .success(try AgentRegistry.decode(stored)) } catch { return .failure(error) }
            }
            switch loaded {
            case nil:
                release(received.delivery)
                return nil
            case .success(let found)?: definition = found
            case .failure(let error)?:
                await refusePinned(received, message: "\(error)")
                return nil
            }
        }
        guard let definition else {
            await refusePinned(received, message: "version \(version) of \(agentID) is not published")
            return nil
        }
        if cached == nil { state.withLockedValue { $0.pinned[version] = definition } }
        var pinned = received
        pinned.definition = definition
        pinned.run.agentVersion = version
        if pinned.announcement != nil { pinned.announcement = startedEvent(pinned.run, received.event) }
        return pinned
    }

    private func refusePinned(_ received: Received, message: String) async {
        logger.warning("delivery names a version this agent cannot run; parking it", metadata: ["error": "\(message)"])
        guard await park(received.delivery, event: received.event, reason: "unknown-version", message: message) else {
            return release(received.delivery)
        }
        if case .child(let origin)? = received.direct {
            var run = received.run
            run.parentRunID = origin.parent
            await reportToParent(run, received.event, state: .failed, result: nil, message: message)
        }
    }
}
