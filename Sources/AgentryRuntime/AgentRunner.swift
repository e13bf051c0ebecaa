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
///
/// This file holds the instance's lifecycle (start, pause, share, stop, update, cancel) and its consumer; a
/// delivery's claim, run and conclusion are in `AgentRunner+Claim.swift`, `+Run.swift` and `+Conclude.swift`.
final class AgentRunner: Sendable {
    /// Why a run was cancelled: by an operator (the event is dropped, recorded as cancelled) or because the
    /// instance stops or the worker shuts down (the event goes back to the queue).
    enum CancelReason: Sendable, Equatable {
        case operatorRequest(String)
        case returnToQueue(String)
        /// Another worker declared this one lost: the run is stopped and its event goes back to the queue.
        case workerLost
        /// An event the agent's `cancel_on` names cancelled it (see `AgentRunner+CancelOn.swift`): the event is
        /// dropped, the run recorded as cancelled by it.
        case cancelledByEvent(eventID: String, description: String)
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
        /// Definitions of versions other than the current one that deliveries named (delegated tasks, resumes).
        var pinned: [String: AgentDefinition] = [:]
        /// The agent's canary, as the registry had it at the last sync (see `AgentRunner+Canary.swift`).
        var canary: Canary?
        /// The consumer of the agent's cancelling events, for an agent with `cancel_on` (see `AgentRunner+CancelOn.swift`).
        var cancelling: Cancelling?
        /// Cancellations by event of runs that did not run here when they arrived, kept a while: a run claimed here
        /// whose handler had not started yet is stopped as it starts.
        var cancelledEarly: [UUID: (reason: CancelReason, at: ContinuousClock.Instant)] = [:]
    }

    let agentID: String
    let context: WorkerContext
    let state: NIOLockedValueBox<State>
    let logger: Logger
    /// Claims of this agent, written in groups.
    let claims: GroupCommit<Claiming, Claimed>

    init(definition: AgentDefinition, context: WorkerContext) {
        self.agentID = definition.metadata.id
        self.context = context
        self.state = NIOLockedValueBox(State(definition: definition))
        var logger = context.logger
        logger[metadataKey: "agentry.agent.id"] = "\(definition.metadata.id)"
        self.logger = logger
        self.claims = Self.claimWriter(store: context.store, workerExpiry: context.options.workerExpiry)
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
        let instanceID = try await context.store.upsertInstance(
            workerID: context.workerID, agentID: agentID,
            version: definition.metadata.version, state: .idle)
        // This instance counts itself: its row says idle now. Should the count fail, the next heartbeat's will do.
        let counted = try? await context.store.consumingInstances(agentID: agentID, expiry: context.options.workerExpiry)[agentID]
        let sharing = max(1, counted ?? state.withLockedValue { $0.sharing })
        let prefetch = Self.prefetch(for: definition, options: context.options, sharing: sharing)
        // Its cancelling events first: should that fail, the next sync starts the instance again.
        try await startCancelling()
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
        logger.info(
            "agent instance consuming",
            metadata: ["agentry.instance.id": "\(instanceID.uuidString.lowercased())", "agentry.agent.version": "\(definition.metadata.version)"])
        if wasStopped {
            await context.announce(
                Event(
                    type: "agent.started",
                    payload: [
                        "instance_id": .string(instanceID.uuidString.lowercased()), "agent_id": .string(agentID),
                        "version": .string(definition.metadata.version), "worker_id": .string(context.workerID),
                    ], priority: .normal, source: context.source))
        }
    }

    /// Records a paused instance for an agent this worker has not been running (it starts while the agent is
    /// paused): the instance shows, nothing is consumed.
    func startPaused() async throws {
        let definition = self.definition
        let instanceID = try await context.store.upsertInstance(
            workerID: context.workerID, agentID: agentID,
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
                logger.info(
                    "agent instance takes its share of the agent's limit",
                    metadata: [
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
        await stopCancelling()
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
        await stopCancelling()
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
                self.logger.error(
                    "stopping without recording the outcome of some runs; their events go back to the queue",
                    metadata: [
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
                await context.announce(
                    Event(
                        type: "agent.stopped",
                        payload: [
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
            _ = try await context.store.upsertInstance(
                workerID: context.workerID, agentID: agentID,
                version: definition.metadata.version, state: mode == .paused ? .paused : .idle)
        }
        // A new limit needs a new prefetch: a new consumer (running tasks finish on the old one).
        let (sharing, current, consumer) = state.withLockedValue { ($0.sharing, $0.prefetch, $0.consumer) }
        let wanted = Self.prefetch(for: definition, options: context.options, sharing: sharing)
        if consuming, let consumer, wanted != current {
            _ = try await resubscribe(replacing: consumer, prefetch: wanted)
        }
        // Its cancelling events as the new version names them (publishing bound them).
        if consuming, old.cancelOn != definition.cancelOn {
            await stopCancelling()
            try await startCancelling()
        }
    }

    /// Cancels one run of this agent, if it runs here. Returns whether it did.
    func cancel(runID: UUID, reason: CancelReason) -> Bool {
        let task = state.withLockedValue { s -> Task<HandlerOutcome, Never>? in
            guard var running = s.running[runID] else {
                if case .cancelledByEvent = reason, !s.definition.cancelOn.isEmpty { keepEarlyCancel(runID, reason: reason, in: &s) }
                return nil
            }
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
            let instanceState: InstanceRecord.State =
                switch s.mode {
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

    var isTakingWork: Bool { state.withLockedValue { $0.mode == .consuming } }
}
