import AMQP
import AgentryBus
import AgentryCore
import AgentryStore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// One agent served by one worker: consumes `agentry.agent.<id>`, and for each delivery filters, claims a run
/// (within `max_parallel_tasks` across all workers), runs the handler, records and publishes the outcome, then
/// acks. Retries wait in `agentry.delay.<ms>` without holding a slot; the last failure is parked in `agentry.dead`.
final class AgentRunner: Sendable {
    /// Why a run was cancelled: by an operator (the event is dropped, recorded as cancelled) or because the
    /// instance stops or the worker shuts down (the event goes back to the queue).
    enum CancelReason: Sendable, Equatable {
        case operatorRequest(String)
        case returnToQueue(String)
        /// Another worker declared this one lost: the run is stopped and its event goes back to the queue.
        case workerLost
    }

    enum Mode: Sendable, Equatable { case consuming, paused, stopped }

    struct Running: Sendable {
        let task: Task<HandlerOutcome, Never>
        let event: Event
        let delivery: AMQPDelivery
        let started: ContinuousClock.Instant
        var cancelReason: CancelReason?
        /// Set once the run outlived the ack deadline and is being handed over (see `handOverLongRuns`): true when
        /// its delivery was acked and its event kept with the run.
        var handover: Task<Bool, Never>?
    }

    struct State: Sendable {
        var definition: AgentDefinition
        var instanceID: UUID?
        var mode: Mode = .stopped
        var consumer: AMQPConsumer?
        var serving: Task<Void, Never>?
        /// The prefetch `consumer` was opened with.
        var prefetch: UInt16 = 0
        /// How many instances of the agent take events across the workers (this one included), as last counted.
        var sharing = 1
        /// Serving loops of consumers replaced (a new prefetch) or paused: their running tasks still finish there, and
        /// `stop` waits for them too.
        var retiring: [UInt64: Task<Void, Never>] = [:]
        var nextRetiring: UInt64 = 0
        var running: [UUID: Running] = [:]
        var lastRun: UUID?
        /// Sequence number of the newest delivery received, for `on_busy: replace`.
        var newestDelivery: UInt64 = 0
        var instanceDirty = true
    }

    let agentID: String
    let context: WorkerContext
    let state: NIOLockedValueBox<State>
    let logger: Logger
    /// Claims of this agent, written in groups.
    let claims: GroupCommit<Claiming, Claimed>

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

    init(definition: AgentDefinition, context: WorkerContext) {
        self.agentID = definition.metadata.id
        self.context = context
        self.state = NIOLockedValueBox(State(definition: definition))
        var logger = context.logger
        logger[metadataKey: "agentry.agent.id"] = "\(definition.metadata.id)"
        self.logger = logger
        let store = context.store
        let expiry = context.options.workerExpiry
        // Waiting claims go by priority: a CRITICAL delivery overtakes the LOW ones this worker holds but has not
        // started (the broker's priority order ends at the prefetch window; this carries it across).
        @Sendable func write(_ batch: [Claiming]) async -> [Result<Claimed, any Error>] {
            do {
                // agent.task.started says when its run started: the moment its claim is written, not when its event
                // arrived (a run may wait for a claim in flight, or for a free slot, in between).
                let now = Date()
                let stamped = batch.map { item in item.announcement.map { announcement in
                    var announcement = announcement
                    announcement.timestamp = now
                    return announcement
                } }
                let announcing = zip(batch, stamped).compactMap { item, announcement in announcement.map { (item.run.runID, $0) } }
                let claims = try await store.claim(batch: batch.map(\.run), announcing: announcing, maxParallel: batch[0].maxParallel,
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
        self.claims = GroupCommit(maxBatch: 200, precedes: { $0.run.priority < $1.run.priority }, write: write)
    }

    /// How long a stopping instance waits, after its handlers' kill grace, for their outcomes to be recorded.
    static let recordingGrace: Duration = .seconds(5)

    var definition: AgentDefinition { state.withLockedValue { $0.definition } }
    var mode: Mode { state.withLockedValue { $0.mode } }
    var runningCount: Int { state.withLockedValue { $0.running.count } }

    /// How many deliveries this worker takes at once: its share of the agent's limit, which holds across all
    /// workers. Kept small on purpose: the broker's priority order only applies to what is not yet delivered, and a
    /// delivery held by a worker whose share of the slots is taken waits there while another worker may have a free
    /// one. With `instances` workers taking the agent's events, each takes ceil(limit / instances), so that together
    /// they hold about as many deliveries as there are slots.
    /// With `on_busy: drop` or `replace`, a few more: events that arrive while the agent is busy must reach the
    /// worker to be dropped (or to replace the waiting one) instead of waiting in the queue.
    static func prefetch(for definition: AgentDefinition, options: WorkerOptions, sharing instances: Int) -> UInt16 {
        let limit = max(1, definition.config.maxParallelTasks)
        let instances = max(1, instances)
        let share = min((limit + instances - 1) / instances, max(1, options.maxTasksPerAgent ?? Int.max))
        return UInt16(clamping: definition.onBusy == .queue ? share : share + 16)
    }

    // MARK: Lifecycle

    /// Starts (or resumes) consuming. Announces `agent.started` when the instance was not running before.
    func start() async throws {
        let (definition, wasStopped) = state.withLockedValue { ($0.definition, $0.mode == .stopped) }
        guard mode != .consuming else { return }
        try await context.store.ensureSlots(agentID: agentID, count: definition.config.maxParallelTasks)
        let instanceID = try await context.store.upsertInstance(workerID: context.workerID, agentID: agentID,
                                                                version: definition.metadata.version, state: .idle)
        // This instance counts itself: its row says idle now. Should the count fail, the next heartbeat's will do.
        let counted = try? await context.store.consumingInstances(agentID: agentID, expiry: context.options.workerExpiry)[agentID]
        let sharing = max(1, counted ?? state.withLockedValue { $0.sharing })
        let prefetch = Self.prefetch(for: definition, options: context.options, sharing: sharing)
        let consumer = try await context.connection.consume(queue: definition.queueName, prefetch: prefetch, maxBodySize: context.options.maxBodySize)
        let serving = Task { await self.serve(consumer) }
        state.withLockedValue {
            $0.instanceID = instanceID
            $0.mode = .consuming
            $0.consumer = consumer
            if let previous = $0.serving { Self.retire(previous, in: &$0, runner: self) }
            $0.serving = serving
            $0.prefetch = prefetch
            $0.sharing = sharing
            $0.instanceDirty = true
        }
        logger.info("agent instance consuming", metadata: ["agentry.instance.id": "\(instanceID.uuidString.lowercased())", "agentry.agent.version": "\(definition.metadata.version)"])
        if wasStopped {
            await context.announce(Event(type: "agent.started", payload: [
                "instance_id": .string(instanceID.uuidString.lowercased()), "agent_id": .string(agentID),
                "version": .string(definition.metadata.version), "worker_id": .string(context.workerID),
            ], priority: .normal, source: context.source))
        }
    }

    /// Records a paused instance for an agent this worker has not been running (it starts while the agent is
    /// paused): the instance shows, nothing is consumed.
    func startPaused() async throws {
        let definition = self.definition
        let instanceID = try await context.store.upsertInstance(workerID: context.workerID, agentID: agentID,
                                                                version: definition.metadata.version, state: .paused)
        state.withLockedValue {
            $0.instanceID = instanceID
            $0.mode = .paused
            $0.instanceDirty = true
        }
    }

    /// Takes this instance's share of the agent's limit when the number of instances taking its events changed
    /// (counted by the worker with each heartbeat): a new consumer with the new prefetch; tasks running on the old one
    /// finish there.
    func share(among instances: Int) async {
        let (definition, old, consumer) = state.withLockedValue { s -> (AgentDefinition, UInt16, AMQPConsumer?) in
            s.sharing = max(1, instances)
            return (s.definition, s.prefetch, s.mode == .consuming ? s.consumer : nil)
        }
        let wanted = Self.prefetch(for: definition, options: context.options, sharing: instances)
        guard let consumer, wanted != old else { return }
        do {
            if try await resubscribe(replacing: consumer, prefetch: wanted) {
                logger.info("agent instance takes its share of the agent's limit", metadata: [
                    "agentry.instances": "\(max(1, instances))", "agentry.prefetch": "\(wanted)",
                    "agentry.max_parallel_tasks": "\(definition.config.maxParallelTasks)",
                ])
            }
        } catch {
            logger.warning("cannot change the prefetch; keeping \(old)", metadata: ["error": "\(error)"])
        }
    }

    /// Opens a consumer with `prefetch` in place of `old` (which is then cancelled; its deliveries can still be
    /// settled and its tasks finish). Returns false, and opens nothing lasting, when `old` is no longer the instance's
    /// consumer (paused, stopped or replaced meanwhile).
    private func resubscribe(replacing old: AMQPConsumer, prefetch: UInt16) async throws -> Bool {
        let consumer = try await context.connection.consume(queue: definition.queueName, prefetch: prefetch, maxBodySize: context.options.maxBodySize)
        let serving = Task { await self.serve(consumer) }
        let swapped = state.withLockedValue { s -> Bool in
            guard s.mode == .consuming, s.consumer?.tag == old.tag else { return false }
            if let previous = s.serving { Self.retire(previous, in: &s, runner: self) }
            s.consumer = consumer
            s.serving = serving
            s.prefetch = prefetch
            s.instanceDirty = true
            return true
        }
        if !swapped {
            // Deliveries can arrive before the cancel takes effect: their serving loop is kept like a replaced one.
            state.withLockedValue { Self.retire(serving, in: &$0, runner: self) }
        }
        (swapped ? old : consumer).cancel()
        return swapped
    }

    /// Keeps a replaced serving loop until it ends, so that `stop` can wait for its tasks.
    private static func retire(_ serving: Task<Void, Never>, in s: inout State, runner: AgentRunner) {
        let key = s.nextRetiring
        s.nextRetiring += 1
        s.retiring[key] = serving
        Task {
            await serving.value
            _ = runner.state.withLockedValue { $0.retiring.removeValue(forKey: key) }
        }
    }

    /// Stops taking new events; running tasks go on. Events keep queueing on the broker.
    func pause() async {
        let consumer = state.withLockedValue { s -> AMQPConsumer? in
            guard s.mode == .consuming else { return nil }
            s.mode = .paused
            s.instanceDirty = true
            return s.consumer
        }
        consumer?.cancel()
        if consumer != nil { logger.info("agent instance paused") }
        await flushInstance()
    }

    /// Ends the instance: stops consuming, returns running tasks' events to the queue after `grace` (zero: at
    /// once), waits for them, and announces `agent.stopped`.
    func stop(grace: Duration, reason: String) async {
        let (consumer, serving, instanceID, wasRunning) = state.withLockedValue { s in
            let result = (s.consumer, s.serving, s.instanceID, s.mode != .stopped)
            s.mode = .stopped
            s.instanceDirty = true
            return result
        }
        consumer?.cancel()
        let recordingGrace = context.options.killGrace + Self.recordingGrace
        let deadline = Task {
            try? await Task.sleep(for: grace)
            if Task.isCancelled { return }
            self.cancelAll(.returnToQueue(reason))
            // The handlers end within the kill grace. Recording how they ended may be impossible (PostgreSQL down, a
            // write refused): past a further while the serving loops give up, and what they could not record goes
            // back to the queue unacknowledged, so that the worker still stops.
            try? await Task.sleep(for: recordingGrace)
            if Task.isCancelled { return }
            let loops = self.state.withLockedValue { s in [s.serving].compactMap { $0 } + Array(s.retiring.values) }
            if !loops.isEmpty {
                self.logger.error("stopping without recording the outcome of some runs; their events go back to the queue", metadata: [
                    "reason": "\(reason)", "agentry.recording_grace_s": "\(Int(recordingGrace.inSeconds))",
                ])
            }
            for loop in loops { loop.cancel() }
        }
        await serving?.value
        // And the serving loops of replaced consumers, including one a resubscription that lost to this stop retired
        // meanwhile (see `resubscribe`).
        var awaited = Set<UInt64>()
        while let (key, retired) = state.withLockedValue({ s in s.retiring.first { !awaited.contains($0.key) } }) {
            awaited.insert(key)
            await retired.value
        }
        deadline.cancel()
        state.withLockedValue {
            $0.consumer = nil
            $0.serving = nil
        }
        if let instanceID {
            try? await context.store.updateInstance(instanceID, state: .stopped, currentTask: nil, runningTasks: 0)
            if wasRunning {
                await context.announce(Event(type: "agent.stopped", payload: [
                    "instance_id": .string(instanceID.uuidString.lowercased()), "agent_id": .string(agentID),
                    "worker_id": .string(context.workerID), "reason": .string(reason),
                ], priority: .normal, source: context.source))
            }
        }
        logger.info("agent instance stopped", metadata: ["reason": "\(reason)"])
    }

    /// Replaces the definition (a new version was published). New deliveries use it; when the agent's limit
    /// changed, the consumer is restarted with the new prefetch.
    func update(_ definition: AgentDefinition) async throws {
        let (old, consuming) = state.withLockedValue { s -> (AgentDefinition, Bool) in
            let old = s.definition
            s.definition = definition
            s.instanceDirty = true
            return (old, s.mode == .consuming)
        }
        guard old != definition else { return }
        try await context.store.ensureSlots(agentID: agentID, count: definition.config.maxParallelTasks)
        logger.info("agent version changed", metadata: ["agentry.agent.version": "\(definition.metadata.version)"])
        // The instance row shows the new version (its state is rewritten by the next flush).
        let mode = state.withLockedValue { $0.instanceID == nil ? nil : $0.mode }
        if let mode, mode != .stopped {
            _ = try await context.store.upsertInstance(workerID: context.workerID, agentID: agentID,
                                                       version: definition.metadata.version, state: mode == .paused ? .paused : .idle)
        }
        // A new limit needs a new prefetch: a new consumer (running tasks finish on the old one).
        let (sharing, current, consumer) = state.withLockedValue { ($0.sharing, $0.prefetch, $0.consumer) }
        let wanted = Self.prefetch(for: definition, options: context.options, sharing: sharing)
        if consuming, let consumer, wanted != current {
            _ = try await resubscribe(replacing: consumer, prefetch: wanted)
        }
    }

    /// Cancels one run of this agent, if it runs here. Returns whether it did.
    func cancel(runID: UUID, reason: CancelReason) -> Bool {
        let task = state.withLockedValue { s -> Task<HandlerOutcome, Never>? in
            guard var running = s.running[runID] else { return nil }
            running.cancelReason = reason
            s.running[runID] = running
            return running.task
        }
        task?.cancel()
        return task != nil
    }

    /// Cancels every run of this agent here; returns how many.
    @discardableResult
    func cancelAll(_ reason: CancelReason) -> Int {
        let ids = state.withLockedValue { Array($0.running.keys) }
        return ids.filter { cancel(runID: $0, reason: reason) }.count
    }

    /// Writes the instance row when something changed since the last write (called by the worker's reporter).
    func flushInstance() async {
        let snapshot = state.withLockedValue { s -> (UUID, InstanceRecord.State, UUID?, Int, Int?)? in
            guard s.instanceDirty, let id = s.instanceID else { return nil }
            s.instanceDirty = false
            let instanceState: InstanceRecord.State = switch s.mode {
            case .stopped: .stopped
            case .paused: .paused
            case .consuming: s.running.isEmpty ? .idle : .running
            }
            let prefetch = s.mode == .consuming && s.consumer != nil ? Int(s.prefetch) : nil
            return (id, instanceState, s.running.isEmpty ? nil : s.lastRun, s.running.count, prefetch)
        }
        guard let (id, instanceState, task, count, prefetch) = snapshot else { return }
        do {
            try await context.store.updateInstance(id, state: instanceState, currentTask: task, runningTasks: count, prefetch: prefetch)
        } catch {
            state.withLockedValue { $0.instanceDirty = true }
            logger.warning("cannot update the instance row", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Serving deliveries

    private func serve(_ consumer: AMQPConsumer) async {
        let sweeper = Task { await self.handOverLongRuns() }
        defer { sweeper.cancel() }
        await withDiscardingTaskGroup { group in
            do {
                for try await delivery in consumer {
                    let incoming = receive(delivery)
                    group.addTask { await self.handle(incoming) }
                }
            } catch {
                logger.error("consumer of \(consumer.queue) ended", metadata: ["error": "\(error)"])
                state.withLockedValue {
                    if $0.mode == .consuming { $0.mode = .paused }
                    $0.instanceDirty = true
                }
            }
        }
        await consumer.close()
    }

    private var isTakingWork: Bool { state.withLockedValue { $0.mode == .consuming } }

    /// A delivery as read in arrival order, before its own task handles it.
    enum Incoming: Sendable {
        case undecodable(AMQPDelivery, EventDecodingError)
        case event(Received)
    }

    struct Received: Sendable {
        let delivery: AMQPDelivery
        let event: Event
        let definition: AgentDefinition
        let run: TaskRun
        let sequence: UInt64
        /// Why the event starts no task (no trigger matched), or nil.
        let skipReason: String?
        let announcement: Event?
        /// The first claim, queued on arrival (nil when the event is skipped).
        let claim: Reply<Claimed>?
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
        let (definition, sequence, instanceID, taking) = state.withLockedValue { s -> (AgentDefinition, UInt64, UUID?, Bool) in
            s.newestDelivery += 1
            return (s.definition, s.newestDelivery, s.instanceID, s.mode == .consuming)
        }
        let run = TaskRun(runID: Self.newRunID(), agentID: agentID, agentVersion: definition.metadata.version,
                          eventID: event.id.rawValue, eventType: event.type, priority: event.priority,
                          workerID: context.workerID, instanceID: instanceID,
                          attempt: attempt, state: .running, eventAt: event.timestamp, receivedAt: delivery.receivedAt)
        let skipReason = Self.skipReason(definition, event: event, pools: context.topology.eventPools)
        // Announced (when the agent announces its tasks) by the claim, which logs it with the run record.
        let announcement = skipReason == nil && definition.config.taskEvents ? startedEvent(run, event) : nil
        let claim = skipReason == nil && taking
            ? claims.enqueue(Claiming(run: run, maxParallel: definition.config.maxParallelTasks, announcement: announcement))
            : nil
        return .event(Received(delivery: delivery, event: event, definition: definition, run: run, sequence: sequence,
                               skipReason: skipReason, announcement: announcement, claim: claim))
    }

    func handle(_ incoming: Incoming) async {
        let received: Received
        switch incoming {
        case .undecodable(let delivery, let error):
            if !(await park(delivery, event: nil, reason: error.reason.description, message: error.message)) { release(delivery) }
            return
        case .event(let event):
            received = event
        }
        let delivery = received.delivery
        let definition = received.definition
        let event = received.event
        let attempt = received.run.attempt
        let sequence = received.sequence
        var run = received.run

        if let reason = received.skipReason {
            run.state = .skipped
            run.message = reason
            AgentryMetrics.consumed(event, by: agentID)
            AgentryMetrics.runFinished(agent: agentID, outcome: "skipped", seconds: nil)
            let skipped = run
            guard await persist("record a skipped run", { try await self.context.store.recordSkipped(skipped) }) != nil else {
                return release(delivery)
            }
            delivery.ack()
            return
        }
        var startedAnnouncement = received.announcement

        // Claim a run: wait while the agent is at its limit (the delivery stays ours, unacked) or while a live
        // worker still runs this event (a redelivery after a lost connection).
        var wait = Duration.milliseconds(5)
        // The claim queued on arrival first; then, after a busy or failed attempt, new ones.
        var queued = received.claim
        var failures = 0
        claiming: while true {
            if queued == nil, !isTakingWork {
                delivery.reject(requeue: true)
                return
            }
            do {
                let claim = queued ?? claims.enqueue(Claiming(run: run, maxParallel: definition.config.maxParallelTasks, announcement: startedAnnouncement))
                queued = nil
                let claimed = try await claim.value.get()
                switch claimed.claim {
                case .claimed(let slot):
                    run.slot = slot
                    // As logged by the claim, stamped as it was written.
                    startedAnnouncement = claimed.announcement
                    break claiming
                case .alreadyCompleted(let previous):
                    logger.info("event already completed for this agent; not running it again", metadata: [
                        "agentry.event.id": "\(event.id)", "agentry.run.state": "\(previous.rawValue)",
                    ])
                    delivery.ack()
                    return
                case .busy:
                    // on_busy: drop discards an event that finds the agent at its limit; replace discards a waiting
                    // event once a newer one arrived. Both are recorded as skipped, with the reason.
                    let newer = state.withLockedValue { $0.newestDelivery } > sequence
                    if definition.onBusy == .drop || (definition.onBusy == .replace && newer) {
                        run.state = .skipped
                        run.message = definition.onBusy == .drop
                            ? "dropped: \(agentID) was running max_parallel_tasks (\(definition.config.maxParallelTasks)) tasks (on_busy: drop)"
                            : "replaced by a newer event while \(agentID) was busy (on_busy: replace)"
                        let skipped = run
                        guard await persist("record a dropped run", { try await self.context.store.recordSkipped(skipped) }) != nil else {
                            return release(delivery)
                        }
                        delivery.ack()
                        return
                    }
                    try? await Task.sleep(for: wait)
                    wait = min(wait * 2, .milliseconds(100))
                case .runningElsewhere(let other, let worker):
                    logger.debug("event is running on another worker; waiting for its outcome", metadata: [
                        "agentry.run.id": "\(other)", "agentry.worker.id": "\(worker)",
                    ])
                    try? await Task.sleep(for: .seconds(1))
                case .ended(let state):
                    // An earlier try of this claim was written and its answer lost; meanwhile this worker was declared
                    // lost (the run is `lost`), or another worker took the run's slot while this one's heartbeats could
                    // not get through (the run is `running` without it). Its handler never started: record it so, and
                    // claim the delivery, still ours, afresh.
                    let fresh = Self.newRunID()
                    logger.warning("a claim's earlier try was recorded and lost its slot meanwhile; claiming under a new run id", metadata: [
                        "agentry.run.id": "\(run.runID)", "agentry.run.state": "\(state.rawValue)", "agentry.run.next": "\(fresh)",
                    ])
                    if state == .running {
                        let orphan = run
                        await persist("record the run whose claim lost its slot") {
                            try await self.context.finish(orphan, .init(state: .cancelled,
                                message: "its claim's answer was lost and its slot taken meanwhile; the event was claimed again as run \(fresh.uuidString.lowercased())"))
                        }
                    }
                    run.runID = fresh
                    run.slot = nil
                    if startedAnnouncement != nil { startedAnnouncement = startedEvent(run, event) }
                }
            } catch {
                failures += 1
                // The event's own content refused by the database (SQLSTATE class 22): trying again cannot help, and
                // the delivery would hold a prefetch slot for ever. Park it. Other refusals (the database down, a
                // schema this binary does not match during an upgrade) concern every event alike: the delivery stays
                // ours and the claim is tried again, ever less often.
                if (error as? StoreError)?.isDataError == true {
                    logger.error("the database refuses this event's run; parking the event", metadata: [
                        "agentry.event.id": "\(event.id)", "error": "\(error)",
                    ])
                    if !(await park(delivery, event: event, reason: "refused-by-database",
                                    message: "the run of \(agentID) could not be recorded: \(error)")) {
                        release(delivery)
                    }
                    return
                }
                logger.warning("cannot claim a run; trying again", metadata: ["error": "\(error)", "agentry.claim.failures": "\(failures)"])
                try? await Task.sleep(for: .seconds(Double(min(failures, 10))))
            }
        }

        let started = ContinuousClock.now
        AgentryMetrics.consumed(event, by: agentID)
        AgentryMetrics.runStarted(agent: agentID, publishToStart: Date().timeIntervalSince(event.timestamp))
        let taskContext = TaskContext(runID: run.runID, agent: definition, event: event, attempt: attempt,
                                      workerID: context.workerID, instanceID: run.instanceID,
                                      timeout: .seconds(definition.config.timeoutSeconds), killGrace: context.options.killGrace,
                                      outputLimit: context.options.outputLimit)
        let task = Task { await self.runHoldingResources(taskContext) }
        state.withLockedValue {
            $0.running[run.runID] = Running(task: task, event: event, delivery: delivery, started: started)
            $0.lastRun = run.runID
            $0.instanceDirty = true
        }
        // Announced while the handler already runs; awaited before agent.task.completed or failed is published, so
        // that it always comes first.
        var announcedStart: Task<Void, Never>?
        if let startedAnnouncement {
            let context = self.context
            announcedStart = Task { await context.announceLogged(startedAnnouncement) }
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
        let settlement = Settlement(delivery: delivery, handedOver: handedOver, event: event,
                                    queue: definition.queueName, channel: context.retryChannel)
        await conclude(run: run, event: event, settlement: settlement, definition: definition, outcome: outcome,
                       cancelReason: cancelReason, elapsed: elapsed, announcedStart: announcedStart)
    }

    /// A run that outlives the ack deadline (under the broker's consumer timeout) is handed over: its event is kept
    /// with the run and its delivery acked, so the broker neither redelivers it nor closes the channel. One loop per
    /// instance looks for such runs every quarter of the deadline (at most every 10 s), instead of a timer per run.
    private func handOverLongRuns() async {
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

    private func conclude(run: TaskRun, event: Event, settlement: Settlement, definition: AgentDefinition,
                          outcome: HandlerOutcome, cancelReason: CancelReason?, elapsed: Duration,
                          announcedStart: Task<Void, Never>?) async {
        // Lifecycle events are announcements of what the run records say: they are published after the outcome is
        // recorded and the delivery acked, so that waiting for their confirms holds neither a slot nor the
        // prefetch window. (A worker that dies in between leaves the run recorded but not announced.)
        let result = outcome.result.map(JSON.serialize)
        let milliseconds = elapsed.inMilliseconds
        switch outcome.status {
        case .succeeded:
            // Follow-ups first, with ids derived from this agent and event: should the worker die before the run
            // is recorded, the run again publishes the same ids, which the log and the agents' runs dedupe.
            for (index, followUp) in outcome.followUps.enumerated() {
                var derived = followUp
                derived.id = EventID.derived(from: [Array(agentID.utf8), Array(event.id.rawValue.utf8), Array(String(index).utf8)])
                let stable = derived
                await persist("publish a follow-up event") { try await self.context.bus.publish(stable) }
            }
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
                try await self.context.finish(run, .init(state: .succeeded, result: result, output: outcome.output,
                                                        stderr: outcome.stderr, exitStatus: outcome.exitStatus, announcement: announcement))
            }
            // Acked only once the outcome is committed; unrecorded (the worker stops), the event goes back.
            guard recorded != nil else { return settlement.release() }
            settlement.ack()
            await announcedStart?.value
            if recorded == true, let completed {
                await context.announceLogged(completed)
            }

        case .failed, .timedOut:
            let state: TaskRun.State = outcome.status == .timedOut ? .timedOut : .failed
            let policy = definition.effectiveRetry
            let message = outcome.message ?? "the handler failed"
            if definition.config.autoRetry, outcome.retryable, run.attempt < policy.attempts {
                let delay = Self.jittered(policy.backoff.delay(afterAttempt: run.attempt), jitter: context.options.retryJitter)
                let due = Date().addingTimeInterval(delay)
                let recorded = await persist("record the failed attempt") {
                    try await self.context.finish(run, .init(state: state, result: result, output: outcome.output, stderr: outcome.stderr,
                                                            exitStatus: outcome.exitStatus, message: message, retryAt: due))
                }
                let scheduled: Bool? = await persist("schedule the retry") {
                    try await self.scheduleRetry(event, attempt: run.attempt + 1, delaySeconds: delay)
                    return true
                }
                guard recorded != nil, scheduled != nil else { return settlement.release() }
                logger.info("run failed; retrying later", metadata: [
                    "agentry.run.id": "\(run.runID)", "agentry.attempt": "\(run.attempt)", "agentry.retry.in_s": "\(String(format: "%.2f", delay))",
                    "error": "\(message)",
                ])
                settlement.ack()
                return
            }
            let attempts = definition.config.autoRetry ? policy.attempts : 1
            let final = outcome.retryable ? "\(message) (attempt \(run.attempt) of \(attempts))"
                : "\(message) (attempt \(run.attempt); not retried, as another attempt would fail the same way)"
            let recorded = await persist("record the failed run") {
                try await self.context.finish(run, .init(state: state, result: result, output: outcome.output, stderr: outcome.stderr,
                                                        exitStatus: outcome.exitStatus, message: final))
            }
            guard recorded != nil else { return settlement.release() }
            guard await park(settlement.delivery, event: event, ack: !settlement.handedOver, reason: state == .timedOut ? "task-timed-out" : "task-failed", message: final) else {
                return settlement.release()
            }
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
                    try await self.context.finish(run, .init(state: .cancelled, output: outcome.output, stderr: outcome.stderr,
                                                            exitStatus: outcome.exitStatus, message: "cancelled by \(who)"))
                }
                guard recorded != nil else { return settlement.release() }
                settlement.ack()
            case .workerLost?:
                // Recorded as cancelled over the `lost` the other worker wrote (or over `running`, should the row have
                // been marked lost by hand), which also gives back a slot still held; then the event goes back.
                await persist("record the run stopped because its worker was declared lost") {
                    try await self.context.finish(run, .init(state: .cancelled, output: outcome.output, stderr: outcome.stderr, exitStatus: outcome.exitStatus,
                                                            message: "stopped: worker \(self.context.workerID) was declared lost by another worker; the event went back to the queue"))
                }
                await settlement.requeue()
            case .returnToQueue(let why)?:
                await persist("record the interrupted run") {
                    try await self.context.finish(run, .init(state: .cancelled, output: outcome.output, stderr: outcome.stderr,
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
        event.followUp(type: "agent.task.started", payload: lifecyclePayload(run, event) + ["attempt": .int(Int64(run.attempt))],
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
    func scheduleRetry(_ event: Event, attempt: Int, delaySeconds: Double) async throws {
        // 100 ms buckets: every message of one delay queue waits the same time.
        let milliseconds = max(100, Int((delaySeconds * 10).rounded()) * 100)
        let connection = context.connection
        _ = try await connection.declare(Topology.delayQueue(milliseconds: milliseconds))
        try await connection.bind(Topology.delayBinding(milliseconds: milliseconds))
        var message = EventBus.message(for: event)
        message.exchange = Topology.delayExchange
        message.routingKey = "agentry.agent.\(agentID)"
        message.properties.headers = [
            DeadLetters.Header.attempt: .int(Int64(attempt)),
            DeadLetters.Header.delay: .string(String(milliseconds)),
        ]
        message.mandatory = true
        try await context.retryChannel.publish(message)
    }

    /// Parks the delivery in `agentry.dead` and acks it once the broker confirmed the copy. Returns false, the
    /// delivery unsettled, when the worker stopped first.
    @discardableResult
    private func park(_ delivery: AMQPDelivery, event: Event?, ack: Bool = true, reason: String, message: String) async -> Bool {
        let queue = "agentry.agent.\(agentID)"
        guard await persist("park the event in agentry.dead", {
            try await self.context.dead.park(delivery, reason: reason, message: message, queue: queue,
                                             replayTo: event == nil ? nil : ("", queue), event: event)
        }) != nil else { return false }
        if ack { delivery.ack() }
        return true
    }

    /// Gives a delivery back to its queue unacknowledged: what could not be recorded is done again by whichever worker
    /// receives it next (every write on the way is idempotent).
    private func release(_ delivery: AMQPDelivery) {
        delivery.reject(requeue: true)
    }

    /// Runs `body` until it succeeds: a write that records an outcome must not be skipped (the delivery stays
    /// unacked meanwhile). Gives up only when the worker is cancelled; returns nil then.
    @discardableResult
    private func persist<T: Sendable>(_ what: String, _ body: @Sendable () async throws -> T) async -> T? {
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
