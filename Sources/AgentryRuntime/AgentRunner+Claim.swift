import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Claiming a run: deliveries read in arrival order and their claims queued, written in groups by priority, and
/// waited for while the agent is at its limit.
extension AgentRunner {
    /// A run to claim, with its `agent.task.started` event (logged by the claim itself) when the agent announces
    /// its tasks.
    struct Claiming: Sendable {
        var run: TaskRun
        var maxParallel: Int
        var announcement: Event?
    }

    /// A claim's answer, with the run's `agent.task.started` as the claim logged it (stamped as the claim was written).
    struct Claimed: Sendable {
        var claim: RuntimeStore.Claim
        var announcement: Event?
    }

    /// The claims of one agent, written in groups.
    static func claimWriter(store: RuntimeStore, workerExpiry expiry: Duration) -> GroupCommit<Claiming, Claimed> {
        // Waiting claims go by priority: a CRITICAL delivery overtakes the LOW ones this worker holds but has not
        // started (the broker's priority order ends at the prefetch window; this carries it across).
        @Sendable func write(_ batch: [Claiming]) async -> [Result<Claimed, any Error>] {
            do {
                // agent.task.started says when its run started: the moment its claim is written, not when its event
                // arrived (a run may wait for a claim in flight, or for a free slot, in between).
                let now = Date()
                let stamped = batch.map { item in
                    item.announcement.map { announcement in
                        var announcement = announcement
                        announcement.timestamp = now
                        return announcement
                    }
                }
                let announcing = zip(batch, stamped).compactMap { item, announcement in announcement.map { (item.run.runID, $0) } }
                let claims = try await store.claim(
                    batch: batch.map(\.run), announcing: announcing, maxParallel: batch[0].maxParallel,
                    workerExpiry: expiry)
                return zip(claims, stamped).map { .success(Claimed(claim: $0, announcement: $1)) }
            } catch let error as StoreError where error.isDataError && batch.count > 1 {
                // One event's content refused by the database (a value it cannot hold) fails the whole statement:
                // claim each on its own, so that only that one fails (and is parked) and the others of the batch run.
                var results: [Result<Claimed, any Error>] = []
                for item in batch { results += await write([item]) }
                return results
            } catch {
                return batch.map { _ in .failure(error) }
            }
        }
        return GroupCommit(maxBatch: 200, precedes: { $0.run.priority < $1.run.priority }, write: write)
    }

    /// A delivery as read in arrival order, before its own task handles it.
    enum Incoming: Sendable {
        case undecodable(AMQPDelivery, EventDecodingError)
        case event(Received)
    }

    struct Received: Sendable {
        let delivery: AMQPDelivery
        let event: Event
        /// The definition the delivery runs at: the current version's, the canary's when the canary took the event, or
        /// (once `atPinnedVersion` loaded it) the version `pinnedVersion` names.
        var definition: AgentDefinition
        /// The version the delivery must run at: the one its ``DirectDelivery`` headers name, else the canary's when the
        /// canary took the event; nil for the current version.
        let pinnedVersion: String?
        var run: TaskRun
        let sequence: UInt64
        /// Why the event starts no task (no trigger matched), or nil.
        let skipReason: String?
        var announcement: Event?
        /// The first claim, queued on arrival (nil when the event is skipped, is a resume, or runs at a version other
        /// than the current one or the canary's).
        let claim: Reply<Claimed>?
        /// A delegated task, a resume or an invocation (see ``DirectDelivery``); nil for an event of a trigger.
        let direct: DirectDelivery?

        /// The root of the run tree a delegated task belongs to.
        var treeRoot: UUID? {
            if case .child(let origin)? = direct { return origin.root }
            return nil
        }
    }

    /// Reads a delivery where the consumer yields it, one at a time: decodes its event and queues its claim, so that
    /// claims reach the agent's queue of claims in the order the broker delivered them (its priority order) and then
    /// go by priority. Were this left to each delivery's task, a LOW delivery's task could queue its claim, and
    /// start, ahead of a CRITICAL delivery received just before it.
    func receive(_ delivery: AMQPDelivery) -> Incoming {
        let event: Event
        do {
            event = try delivery.decodeEvent(maxBodySize: context.options.maxBodySize)
        } catch {
            return .undecodable(delivery, error)
        }
        let attempt = max(1, Int(delivery.properties.headers?[DeadLetters.Header.attempt]?.intValue ?? 1))
        let (current, sequence, instanceID, taking, canary) = state.withLockedValue { s -> (AgentDefinition, UInt64, UUID?, Bool, Canary?) in
            s.newestDelivery += 1
            return (s.definition, s.newestDelivery, s.instanceID, s.mode == .consuming, s.canary)
        }
        let direct = DirectDelivery(headers: delivery.properties.headers)
        // A version named by the headers first; else the canary's, for its share of the events (decided here, from
        // the event id, without a round trip).
        var definition = current
        var pinnedVersion = direct?.pinnedVersion
        if pinnedVersion == nil, let canary, canary.takes(event.id, of: agentID) {
            definition = canary.definition
            pinnedVersion = canary.definition.metadata.version
        }
        let run = TaskRun(
            runID: Self.newRunID(), agentID: agentID, agentVersion: definition.metadata.version,
            eventID: event.id.rawValue, eventType: event.type, priority: event.priority,
            workerID: context.workerID, instanceID: instanceID,
            attempt: attempt, state: .running, eventAt: event.timestamp, receivedAt: delivery.receivedAt)
        let skipReason: String?
        if direct != nil {
            // Sent to this agent by name: no trigger is matched.
            skipReason = nil
        } else if definition.goal.type == .onDemand {
            skipReason =
                "\(agentID) is an on-demand agent: it runs only when delegated to or invoked (agentry agents invoke), never from a trigger's event"
        } else {
            skipReason =
                Self.skipReason(definition, event: event, pools: context.topology.eventPools)
                ?? definition.flow?.expireAfterSeconds.flatMap { Self.expiry(event, after: $0) }
        }
        var isResume = false
        if case .resume? = direct { isResume = true }
        // A version other than the one taken here is loaded by `atPinnedVersion` first; its claim is queued after.
        let atChosenVersion = pinnedVersion.map { $0 == definition.metadata.version } ?? true
        // Announced (when the agent announces its tasks) by the claim, which logs it with the run record.
        // A run that passes flow control or budgets first announces itself once it passed them.
        let gated = isGated(definition)
        let announcement = skipReason == nil && !isResume && !gated && definition.config.taskEvents ? startedEvent(run, event) : nil
        // A debounced event is recorded on its own, without a claim (see `debounce`).
        let debounced = direct == nil && definition.flow?.debounceSeconds != nil
        let claim =
            skipReason == nil && taking && !isResume && atChosenVersion && !debounced
            ? claims.enqueue(Claiming(run: run, maxParallel: definition.config.maxParallelTasks, announcement: announcement))
            : nil
        return .event(
            Received(
                delivery: delivery, event: event, definition: definition, pinnedVersion: pinnedVersion, run: run, sequence: sequence,
                skipReason: skipReason, announcement: announcement, claim: claim, direct: direct))
    }

    /// Claims a run for the event: waits while the agent is at its limit (the delivery stays ours, unacked) or while a
    /// live worker still runs this event (a redelivery after a lost connection). Returns the run, in its slot, with its
    /// `agent.task.started` as the claim logged it; nil when the delivery was settled instead (the event completed
    /// already, dropped or replaced by `on_busy`, parked, or given back because the instance stopped taking work).
    func claim(_ received: Received) async -> (run: TaskRun, announcement: Event?)? {
        let delivery = received.delivery
        let definition = received.definition
        let event = received.event
        var run = received.run
        var announcement = received.announcement
        var wait = Duration.milliseconds(5)
        // The claim queued on arrival first; then, after a busy or failed attempt, new ones.
        var queued = received.claim
        var failures = 0
        while true {
            if queued == nil, !isTakingWork {
                delivery.reject(requeue: true)
                return nil
            }
            do {
                let claim = queued ?? claims.enqueue(Claiming(run: run, maxParallel: definition.config.maxParallelTasks, announcement: announcement))
                queued = nil
                let claimed = try await claim.value.get()
                switch claimed.claim {
                case .claimed(let slot):
                    run.slot = slot
                    // As logged by the claim, stamped as it was written.
                    return (run, claimed.announcement)
                case .alreadyCompleted(let previous):
                    logger.info(
                        "event already completed for this agent; not running it again",
                        metadata: [
                            "agentry.event.id": "\(event.id)", "agentry.run.state": "\(previous.rawValue)",
                        ])
                    delivery.ack()
                    if case .child(let origin)? = received.direct {
                        // Its worker may have died between recording the child's end and telling the parent.
                        await reportCompletedChild(event, parent: origin.parent)
                    }
                    return nil
                case .busy:
                    // on_busy: drop discards an event that finds the agent at its limit; replace discards a waiting
                    // event once a newer one arrived. Both are recorded as skipped, with the reason.
                    let newer = state.withLockedValue { $0.newestDelivery } > received.sequence
                    if definition.onBusy == .drop || (definition.onBusy == .replace && newer) {
                        run.state = .skipped
                        run.message =
                            definition.onBusy == .drop
                            ? "dropped: \(agentID) was running max_parallel_tasks (\(definition.config.maxParallelTasks)) tasks (on_busy: drop)"
                            : "replaced by a newer event while \(agentID) was busy (on_busy: replace)"
                        let skipped = run
                        guard await persist("record a dropped run", { try await self.context.store.recordSkipped(skipped) }) != nil else {
                            release(delivery)
                            return nil
                        }
                        delivery.ack()
                        return nil
                    }
                    try? await Task.sleep(for: wait)
                    wait = min(wait * 2, .milliseconds(100))
                case .runningElsewhere(let other, let worker):
                    logger.debug(
                        "event is running on another worker; waiting for its outcome",
                        metadata: [
                            "agentry.run.id": "\(other)", "agentry.worker.id": "\(worker)",
                        ])
                    try? await Task.sleep(for: .seconds(1))
                case .ended(let state):
                    // An earlier try of this claim was written and its answer lost; meanwhile this worker was declared
                    // lost (the run is `lost`), or another worker took the run's slot while this one's heartbeats could
                    // not get through (the run is `running` without it). Its handler never started: record it so, and
                    // claim the delivery, still ours, afresh.
                    let fresh = Self.newRunID()
                    logger.warning(
                        "a claim's earlier try was recorded and lost its slot meanwhile; claiming under a new run id",
                        metadata: [
                            "agentry.run.id": "\(run.runID)", "agentry.run.state": "\(state.rawValue)", "agentry.run.next": "\(fresh)",
                        ])
                    if state == .running {
                        let orphan = run
                        await persist("record the run whose claim lost its slot") {
                            try await self.context.finish(
                                orphan,
                                .init(
                                    state: .cancelled,
                                    message:
                                        "its claim's answer was lost and its slot taken meanwhile; the event was claimed again as run \(fresh.uuidString.lowercased())"
                                ))
                        }
                    }
                    run.runID = fresh
                    run.slot = nil
                    if announcement != nil { announcement = startedEvent(run, event) }
                }
            } catch {
                failures += 1
                // The event's own content refused by the database (SQLSTATE class 22): trying again cannot help, and
                // the delivery would hold a prefetch slot for ever. Park it. Other refusals (the database down, a
                // schema this binary does not match during an upgrade) concern every event alike: the delivery stays
                // ours and the claim is tried again, ever less often.
                if (error as? StoreError)?.isDataError == true {
                    logger.error(
                        "the database refuses this event's run; parking the event",
                        metadata: [
                            "agentry.event.id": "\(event.id)", "error": "\(error)",
                        ])
                    if !(await park(
                        delivery, event: event, reason: "refused-by-database",
                        message: "the run of \(agentID) could not be recorded: \(error)"))
                    {
                        release(delivery)
                    }
                    return nil
                }
                logger.warning("cannot claim a run; trying again", metadata: ["error": "\(error)", "agentry.claim.failures": "\(failures)"])
                try? await Task.sleep(for: .seconds(Double(min(failures, 10))))
            }
        }
    }
}
