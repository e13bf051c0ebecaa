import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Cancel on event (`cancel_on`, see ``AgentryCore/CancelOn``): the agent's cancelling events, read from a queue of
/// their own, cancel its matching runs (queued, waiting and running, on any worker); its runs keep the values compared
/// and look for a cancellation right after their claim and whenever they begin to wait (see
/// ``AgentryStore/CancelOnStore`` for why nothing escapes either way).
extension AgentRunner {
    /// Cancelling events one worker holds at once per agent: each is handled in a few statements.
    static let cancelPrefetch: UInt16 = 8
    /// How long a cancellation of a run this worker does not run (yet) is kept: a run claimed here whose handler has
    /// not started when its cancellation arrives is stopped as it starts.
    static let earlyCancelKept: Duration = .seconds(120)

    /// The consumer of the agent's cancelling events and its serving loop, while the instance consumes.
    struct Cancelling: Sendable {
        let consumer: AMQPConsumer
        let serving: Task<Void, Never>
    }

    /// Starts reading the agent's cancelling events, when its definition declares `cancel_on` (binding its queue of
    /// them to the definition's types first, as publishing does).
    func startCancelling() async throws {
        let definition = self.definition
        guard !definition.cancelOn.isEmpty, state.withLockedValue({ $0.cancelling == nil }) else { return }
        try await context.bus.declareCancelQueue(agentID, patterns: definition.cancelOnPatterns)
        let consumer = try await context.connection.consume(
            queue: Topology.cancelQueue(agentID).name, prefetch: Self.cancelPrefetch, maxBodySize: context.options.maxBodySize)
        let serving = Task { await self.serveCancellations(consumer) }
        let replaced = state.withLockedValue { s -> Cancelling? in
            defer { s.cancelling = Cancelling(consumer: consumer, serving: serving) }
            return s.cancelling
        }
        replaced?.consumer.cancel()
    }

    /// Stops reading cancelling events (the instance pauses or stops). One being handled stops where it is: its
    /// delivery goes back to the queue, and whoever takes it next does again what was done (each step is idempotent).
    func stopCancelling() async {
        let cancelling = state.withLockedValue { s -> Cancelling? in
            defer { s.cancelling = nil }
            return s.cancelling
        }
        guard let cancelling else { return }
        cancelling.consumer.cancel()
        cancelling.serving.cancel()
        await cancelling.serving.value
    }

    private func serveCancellations(_ consumer: AMQPConsumer) async {
        do {
            for try await delivery in consumer {
                await cancelRuns(for: delivery)
            }
        } catch {
            if !Task.isCancelled { logger.error("consumer of \(consumer.queue) ended", metadata: ["error": "\(error)"]) }
        }
        await consumer.close()
    }

    /// A cancelling event: for each `cancel_on` entry it matches, a mark (for the events still queued), the waiting
    /// runs cancelled, the running ones stopped on their workers; recorded as a skipped run saying what it cancelled
    /// (unless the event also starts a run of the agent, which then runs as usual); acked.
    func cancelRuns(for delivery: AMQPDelivery) async {
        let event: Event
        do {
            event = try delivery.decodeEvent(maxBodySize: context.options.maxBodySize)
        } catch {
            if !(await park(delivery, event: nil, reason: error.reason.description, message: error.message)) { release(delivery) }
            return
        }
        let definition = self.definition
        let store = context.store.cancelOn
        var summaries: [String] = []
        for entry in definition.cancelOnEntries(for: event.type) {
            guard let values = entry.values(in: event) else {
                let missing = entry.match.filter { EventTemplate.value(of: $0, in: event).map { $0 == .null } ?? true }
                summaries.append("the event has no \(missing.joined(separator: ", ")), so it cancels nothing by cancel_on '\(entry.type)'")
                continue
            }
            let mark = CancelMark(
                eventID: event.id.rawValue, description: "event \(event.id) (\(event.type), \(CancelOn.describe(values)))")
            let match = JSON.serialize(.object(values))
            let agentID = self.agentID
            guard
                await persist(
                    "record a cancellation mark",
                    {
                        try await store.mark(
                            agentID: agentID, eventID: mark.eventID, eventType: event.type, eventAt: event.timestamp, match: match,
                            description: mark.description)
                    }) != nil,
                let sweep = await persist(
                    "cancel the runs an event cancels",
                    { try await store.sweep(agentID: agentID, mark: mark, eventAt: event.timestamp, match: match) })
            else { return release(delivery) }
            if !sweep.running.isEmpty {
                // To every worker, this one included: each stops those it runs.
                let command = WorkerCommand.cancelByEvent(
                    agentID: agentID, runIDs: sweep.running, eventID: mark.eventID, description: mark.description)
                await persist("tell the workers to stop the runs an event cancels") { try await command.send(on: self.context.connection) }
            }
            await reportCancelledChildren(sweep.cancelled, mark: mark)
            summaries.append(Self.summary(sweep, values: values))
            logger.info(
                "cancel_on event cancels runs",
                metadata: [
                    "agentry.event.id": "\(event.id)", "agentry.cancel.values": "\(CancelOn.describe(values))",
                    "agentry.runs.running": "\(sweep.running.map { $0.uuidString.lowercased() }.joined(separator: ","))",
                    "agentry.runs.cancelled": "\(sweep.cancelled.map { $0.runID.uuidString.lowercased() }.joined(separator: ","))",
                ])
        }
        // An event that also starts a run of the agent runs as usual (a skipped record would count as its completion).
        let triggers =
            definition.goal.type == .continuous && Self.skipReason(definition, event: event, pools: context.topology.eventPools) == nil
        if !triggers, !summaries.isEmpty {
            let instanceID = state.withLockedValue { $0.instanceID }
            var run = TaskRun(
                runID: Self.newRunID(), agentID: agentID, agentVersion: definition.metadata.version, eventID: event.id.rawValue,
                eventType: event.type, priority: event.priority, workerID: context.workerID, instanceID: instanceID, attempt: 1,
                state: .skipped, eventAt: event.timestamp, receivedAt: delivery.receivedAt)
            run.message = "cancel_on: " + summaries.joined(separator: "; ")
            let skipped = run
            guard await persist("record what a cancelling event cancelled", { try await self.context.store.recordSkipped(skipped) }) != nil else {
                return release(delivery)
            }
        }
        delivery.ack()
    }

    /// `cancelled 2 runs for payload.device_id = tv-1 (1 awaiting_approval, 1 waiting for its retry), stopping 1
    /// running; queued events published before this one are cancelled when delivered`.
    static func summary(_ sweep: CancelSweep, values: JSONObject) -> String {
        let byState = Dictionary(grouping: sweep.cancelled, by: \.previousState).map { state, runs in
            "\(runs.count) \(state == "failed" || state == "timed_out" ? "waiting for its retry" : state)"
        }.sorted()
        var text = "cancelled \(sweep.cancelled.count) \(sweep.cancelled.count == 1 ? "run" : "runs") for \(CancelOn.describe(values))"
        if !byState.isEmpty { text += " (\(byState.joined(separator: ", ")))" }
        if !sweep.running.isEmpty { text += ", stopping \(sweep.running.count) running" }
        return text + "; queued events published before this one are cancelled when delivered"
    }

    /// Tells the parents of cancelled child runs that waited (a parent waiting for them counts them as cancelled).
    private func reportCancelledChildren(_ cancelled: [CancelSweep.Cancelled], mark: CancelMark) async {
        for child in cancelled {
            guard let parent = child.parentRunID else { continue }
            let wake = await persist("record the cancelled child's end with its parent") {
                try await self.context.store.delegations.childEnded(
                    parent: parent, eventID: child.eventID, childRunID: child.runID, state: .cancelled, result: nil,
                    message: "cancelled by \(mark.description)")
            }
            if let wake = wake ?? nil { await publishResume(wake) }
        }
    }

    // MARK: The runs' side

    /// Right after a run's claim, for an agent with `cancel_on`: keeps the values its event has at the compared paths,
    /// then looks for a cancelling event's mark. When one cancels it, the run is recorded `cancelled` (its handler never
    /// starts), its delivery acked, and true returned.
    func cancelledAtClaim(_ run: TaskRun, _ received: Received, announcement: Event?) async -> Bool {
        guard let values = received.definition.cancelValues(of: received.event) else { return false }
        let json = JSON.serialize(.object(values))
        let store = context.store.cancelOn
        let event = received.event
        guard await persist("keep the run's cancel_on values", { try await store.keepValues(runID: run.runID, values: json) }) != nil,
            let found = await persist(
                "look for a cancellation of the run",
                {
                    try await store.mark(matching: json, agentID: self.agentID, eventID: event.id.rawValue, eventAt: event.timestamp)
                })
        else {
            received.delivery.reject(requeue: true)
            return true
        }
        guard let mark = found else { return false }
        if let announcement { await context.announceLogged(announcement) }
        AgentryMetrics.runFinished(agent: agentID, outcome: "cancelled", seconds: nil)
        let settlement = Settlement(
            delivery: received.delivery, handedOver: false, event: event, queue: received.definition.queueName, channel: context.retryChannel)
        await conclude(
            run: run, event: event, settlement: settlement, definition: received.definition,
            outcome: HandlerOutcome(status: .cancelled, message: "cancelled by \(mark.description)"),
            cancelReason: .cancelledByEvent(eventID: mark.eventID, description: mark.description), elapsed: .zero, announcedStart: nil,
            direct: received.direct)
        return true
    }

    /// After a run of an agent with `cancel_on` began to wait (for an approval, its children, …): a cancelling event
    /// that came meanwhile, and whose sweep did not see it wait, cancels it now.
    func cancelWaitingIfMarked(_ run: TaskRun, event: Event, definition: AgentDefinition) async {
        guard let values = definition.cancelValues(of: event) else { return }
        let json = JSON.serialize(.object(values))
        let store = context.store.cancelOn
        let agentID = self.agentID
        guard
            let found = await persist(
                "look for a cancellation of the waiting run",
                {
                    try await store.mark(matching: json, agentID: agentID, eventID: event.id.rawValue, eventAt: event.timestamp)
                }), let mark = found
        else { return }
        guard
            let sweep = await persist(
                "cancel the waiting run",
                {
                    try await store.sweep(agentID: agentID, mark: mark, eventAt: event.timestamp, match: json, onlyRun: run.runID)
                })
        else { return }
        await reportCancelledChildren(sweep.cancelled, mark: mark)
    }

    /// Keeps the cancellation of a run that does not run here (yet): `execute` stops it as it starts.
    func keepEarlyCancel(_ runID: UUID, reason: CancelReason, in s: inout State) {
        let now = ContinuousClock.now
        s.cancelledEarly = s.cancelledEarly.filter { now - $0.value.at < Self.earlyCancelKept }
        s.cancelledEarly[runID] = (reason, now)
    }
}
