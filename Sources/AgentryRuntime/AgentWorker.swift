public import AMQP
public import AgentryBus
import AgentryCore
public import AgentryStore
import AsyncHTTPClient
import Foundation
public import Logging
import NIOConcurrencyHelpers
public import ServiceLifecycle

/// Runs the agents of one worker: registers the worker, keeps its heartbeat, starts a runner per published agent it
/// serves, obeys desired states and control messages, declares dead workers lost, and shuts down gracefully.
public final class AgentWorker: Service, Sendable {
    public let workerID: String
    let connection: AMQPConnection
    let bus: EventBus
    let database: Database
    let topology: Topology
    let options: WorkerOptions
    let logger: Logger
    let runners = NIOLockedValueBox<[String: AgentRunner]>([:])
    /// Why agents named by `--agents` are not served, as last logged (logged again only when it changes).
    let unserved = NIOLockedValueBox<[String: String]>([:])
    /// Published versions whose stored definition cannot be read (`id version`), logged once each.
    let unreadable = NIOLockedValueBox<Set<String>>([])
    /// Places installed bundles' files missing on this host (nil: no bundles directory given).
    let bundles: BundlePlacement?
    let syncRequests: AsyncStream<Void>
    let syncContinuation: AsyncStream<Void>.Continuation

    public init(connection: AMQPConnection, bus: EventBus, database: Database, topology: Topology, options: WorkerOptions, logger: Logger) {
        let host = ProcessInfo.processInfo.hostName
        let pid = ProcessInfo.processInfo.processIdentifier
        self.workerID = "\(host)-\(pid)-\(String(UUID().uuidString.prefix(6)).lowercased())"
        self.connection = connection
        self.bus = bus
        self.database = database
        self.topology = topology
        self.options = options
        var logger = logger
        logger[metadataKey: "agentry.worker.id"] = "\(workerID)"
        self.logger = logger
        bundles = options.bundlesDirectory.map { BundlePlacement(directory: $0, database: database, logger: logger) }
        (syncRequests, syncContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public func run() async throws {
        let store = RuntimeStore(database: database, logger: logger)
        try await store.register(
            WorkerRecord(
                workerID: workerID, host: ProcessInfo.processInfo.hostName,
                pid: Int(ProcessInfo.processInfo.processIdentifier),
                version: AgentryVersion.current, labels: options.labels, rssBytes: ResidentMemory.bytes()))
        let bus = self.bus
        let logger = self.logger
        let locks = LockManager(database: database, workerID: workerID, options: options.lockOptions, logger: logger) { event in
            do {
                try await bus.publish(event)
            } catch {
                logger.warning("cannot announce \(event.type)", metadata: ["error": "\(error)"])
            }
        }
        var handlers = HandlerRunner(logger: logger, httpClient: HandlerRunner.client, policy: options.handlerPolicy)
        handlers.prices = options.llmPrices
        handlers.llmObserver = options.llmObserver
        var context = WorkerContext(
            workerID: workerID, connection: connection, bus: bus,
            dead: DeadLetters(channel: try await connection.openChannel(confirms: true)),
            retryChannel: try await connection.openChannel(confirms: true), store: store,
            registry: AgentRegistryStore(database: database, logger: logger), topology: topology,
            handlers: handlers, locks: locks, options: options,
            logger: logger,
            outcomes: WorkerContext.outcomeWriter(store))
        do {
            context.runTokenKey = try await SigningKeys(database: database, logger: logger).runTokenKey()
        } catch {
            logger.warning("exec handlers get no run token", metadata: ["error": "\(error)"])
        }

        // The worker's own control queue, bound to the broadcast exchange.
        let controlQueue = "agentry.control.\(workerID)"
        _ = try await connection.declare(QueueDeclaration(name: controlQueue, durable: false, exclusive: true, autoDelete: true))
        try await connection.bind(BindingDeclaration(source: Topology.controlExchange, destination: .queue(controlQueue)))
        let control = try await connection.consume(queue: controlQueue, prefetch: 0, noAck: true)
        logger.info("worker started", metadata: ["agentry.agents": "\(options.agents.map { $0.sorted().joined(separator: ",") } ?? "all")"])

        // The lock manager outlives the runners: stopping tasks release their locks and announce it.
        let lockService = Task { await locks.run() }
        await serve(context, control: control)
        locks.shutdown()
        // Its last announcements (the releases of stopping tasks) go to the bus, which may not take them.
        if !(await Self.finishes(lockService, within: .seconds(10))) {
            logger.warning("the lock manager did not publish its last events within 10 s; stopping without waiting for it")
        }
        try? await store.markWorker(workerID, status: "stopped")
        logger.info("worker stopped")
    }

    private func serve(_ context: WorkerContext, control: AMQPConsumer) async {
        let store = context.store
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.heartbeats(context) }
                if let retention = self.options.historyRetention {
                    group.addTask { await self.pruneHistory(context.store, olderThan: retention) }
                }
                group.addTask { await self.reportInstances() }
                group.addTask { await self.syncLoop(context) }
                group.addTask {
                    do {
                        for try await delivery in control {
                            let json = try? JSON.parse(delivery.body)
                            let origin: Logger.Metadata = [
                                "agentry.control.sender": "\(json?[path: "sender"]?.stringValue ?? "unknown")",
                                "amqp.user_id": "\(delivery.properties.userID ?? "unknown")",
                                "amqp.app_id": "\(delivery.properties.appID ?? "unknown")",
                            ]
                            guard let json, let command = WorkerCommand(json: json) else {
                                self.logger.warning(
                                    "ignoring a control message that is not a command",
                                    metadata: origin.merging([
                                        "body": "\(String(decoding: delivery.body.prefix(200), as: UTF8.self))"
                                    ]) { $1 })
                                continue
                            }
                            self.logger.info("control message received", metadata: origin.merging(["agentry.control.command": "\(command)"]) { $1 })
                            self.obey(command)
                        }
                    } catch {
                        self.logger.warning("control queue ended", metadata: ["error": "\(error)"])
                    }
                }
            }
        } onGracefulShutdown: {
            self.syncContinuation.finish()
            control.cancel()
        }
        // Shutting down: every instance stops taking work; running tasks get the grace period, then their events
        // go back to the queue.
        let all = runners.withLockedValue { Array($0.values) }
        try? await store.markWorker(workerID, status: "stopping")
        await withDiscardingTaskGroup { group in
            for runner in all {
                group.addTask { await runner.stop(grace: self.options.shutdownGrace, reason: "worker \(self.workerID) shutting down") }
            }
        }
        await control.close()
    }

    /// Whether `task` ends within `limit` (it goes on either way): a stopping worker does not wait for ever on a
    /// broker that does not take its last events.
    static func finishes(_ task: Task<Void, Never>, within limit: Duration) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answered = NIOLockedValueBox(false)
            @Sendable func answer(_ value: Bool) {
                guard
                    !answered.withLockedValue({ done in
                        defer { done = true }
                        return done
                    })
                else { return }
                continuation.resume(returning: value)
            }
            Task {
                await task.value
                answer(true)
            }
            Task {
                try? await Task.sleep(for: limit)
                answer(false)
            }
        }
    }

    /// Agents this worker serves right now (for tests and status).
    public var servedAgents: [String] { runners.withLockedValue { $0.keys.sorted() } }

    func obey(_ command: WorkerCommand) {
        switch command {
        case .sync:
            syncContinuation.yield()
        case .cancel(let runID, let by):
            for runner in runners.withLockedValue({ Array($0.values) }) where runner.cancel(runID: runID, reason: .operatorRequest(by)) {
                logger.info("run cancelled", metadata: ["agentry.run.id": "\(runID)", "by": "\(by)"])
            }
        case .cancelByEvent(let agentID, let runIDs, let eventID, let description):
            guard let runner = runners.withLockedValue({ $0[agentID] }) else { return }
            for runID in runIDs where runner.cancel(runID: runID, reason: .cancelledByEvent(eventID: eventID, description: description)) {
                logger.info("run cancelled", metadata: ["agentry.run.id": "\(runID)", "by": "\(description)"])
            }
        }
    }

    private var isShuttingDown: Bool { Task.isShuttingDownGracefully || Task.isCancelled }

    /// Waits `duration` between two passes of a loop, or less when the worker is told to stop: a stopping worker
    /// must not wait out a pause first.
    private func pause(for duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }

    /// Deletes the history past its retention, once a minute (sooner while a backlog of it remains), in its own task
    /// so that a long pass never holds up the heartbeat.
    private func pruneHistory(_ store: RuntimeStore, olderThan retention: Duration) async {
        while !isShuttingDown {
            var again = Duration.seconds(60)
            do {
                // A pass stops between two batches when the worker shuts down (each batch commits on its own).
                let pruned = try await cancelWhenGracefulShutdown { try await store.pruneHistory(olderThan: retention) }
                if pruned.events + pruned.runs > 0 {
                    logger.info(
                        "deleted history past its retention",
                        metadata: [
                            "agentry.history.events": "\(pruned.events)", "agentry.history.runs": "\(pruned.runs)",
                            "agentry.history.retention_s": "\(Int(retention.inSeconds))",
                        ])
                }
                // More left after a full pass: go on after a pause that lets the hot path's writes through.
                if !pruned.complete && pruned.events + pruned.runs > 0 { again = .seconds(1) }
            } catch {
                if !isShuttingDown {
                    logger.warning("cannot delete the history past its retention", metadata: ["error": "\(error)"])
                }
            }
            await pause(for: again)
        }
    }

    private func heartbeats(_ context: WorkerContext) async {
        let store = context.store
        let logger = self.logger
        let clock = ContinuousClock()
        var nextPrune = clock.now
        var health = HeartbeatHealth()
        while !isShuttingDown {
            if clock.now >= nextPrune {
                // Every worker does it (it is idempotent); once a minute is plenty for a retention counted in hours.
                nextPrune = clock.now + .seconds(60)
                do {
                    let pruned = try await store.pruneWorkers(olderThan: options.workerRetention)
                    if pruned > 0 { logger.info("forgot workers stopped long ago", metadata: ["agentry.workers.pruned": "\(pruned)"]) }
                } catch {
                    logger.warning("cannot forget old workers", metadata: ["error": "\(error)"])
                }
                do {
                    let pruned = try await store.cancelOn.prune(olderThan: options.cancelMarkRetention)
                    if pruned > 0 { logger.info("deleted old cancellation marks", metadata: ["agentry.cancel_marks.pruned": "\(pruned)"]) }
                } catch {
                    logger.warning("cannot delete old cancellation marks", metadata: ["error": "\(error)"])
                }
            }
            await beat(context, health: &health)
            do {
                // Each instance takes its share of its agent's limit, as the instances taking events now divide it.
                let sharing = try await store.consumingInstances(expiry: options.workerExpiry)
                for runner in runners.withLockedValue({ Array($0.values) }) {
                    await runner.share(among: sharing[runner.agentID] ?? 1)
                }
            } catch {
                logger.warning("cannot count the agents' instances", metadata: ["error": "\(error)"])
            }
            do {
                // After the heartbeat, which it must not delay. Cheap when nothing is due (see RuntimeStore.refreshStatistics).
                let analyzed = try await store.refreshStatistics()
                if !analyzed.isEmpty {
                    logger.info(
                        "refreshed the planner's statistics of tables that outgrew them",
                        metadata: [
                            "agentry.tables": "\(analyzed.joined(separator: ", "))"
                        ])
                }
            } catch {
                logger.warning("cannot refresh the run tables' statistics", metadata: ["error": "\(error)"])
            }
            await pause(for: options.heartbeatInterval)
        }
    }

    /// One heartbeat: renews this worker's own (stopping its runs when it finds itself declared lost), then, once
    /// its own heartbeats have gone through for a whole expiry interval, declares silent workers lost and publishes
    /// again the events of their handed-over runs.
    private func beat(_ context: WorkerContext, health: inout HeartbeatHealth) async {
        let store = context.store
        do {
            switch try await store.renewHeartbeat(workerID: workerID, rssBytes: ResidentMemory.bytes()) {
            case .renewed, .gone:
                health.succeeded(at: .now)
            case .wasLost:
                // Another worker found this one's heartbeat expired and recorded its runs as lost: their slots are
                // free and their events may be run elsewhere. Going on would run them twice.
                let stopped = runners.withLockedValue { Array($0.values) }.reduce(0) { $0 + $1.cancelAll(.workerLost) }
                logger.error(
                    "this worker was declared lost by another worker (its heartbeats did not reach PostgreSQL within the expiry); stopped its runs, whose events go back to their queues",
                    metadata: [
                        "agentry.runs.stopped": "\(stopped)", "agentry.worker.expiry_s": "\(Int(options.workerExpiry.inSeconds))",
                    ])
                health.failed()
                health.succeeded(at: .now)
            }
        } catch {
            health.failed()
            logger.warning("cannot write the heartbeat", metadata: ["error": "\(error)"])
            return
        }
        // After an outage of its own (PostgreSQL unreachable from here, or this worker declared lost), every other
        // worker's heartbeat may look old only because the database was unreachable for them too: they get a whole
        // expiry interval to be heard from before this worker declares them lost.
        guard health.maySweep(at: .now, expiry: options.workerExpiry) else { return }
        do {
            let lost = try await store.expireWorkers(expiry: options.workerExpiry)
            if !lost.isEmpty {
                logger.warning("workers stopped sending heartbeats; declared lost", metadata: ["agentry.workers": "\(lost.joined(separator: ", "))"])
            }
        } catch {
            logger.warning("cannot declare silent workers lost", metadata: ["error": "\(error)"])
        }
        await republishHandedOver(context)
    }

    /// Publishes again the events of handed-over runs whose workers were declared lost (their deliveries were acked,
    /// so the broker will not bring them back), to their agents' queues only, after the transaction that declared
    /// them lost committed. Each is recorded once the broker confirmed it; one that fails stays due for the next
    /// heartbeat (of this worker or another).
    private func republishHandedOver(_ context: WorkerContext) async {
        let due: [RuntimeStore.OrphanedRun]
        do {
            due = try await context.store.republishDue()
        } catch {
            logger.warning("cannot read the handed-over runs to publish again", metadata: ["error": "\(error)"])
            return
        }
        for orphan in due {
            let body = Array(orphan.event.utf8)
            guard let json = try? JSON.parse(body),
                let event = try? EventWireFormat.decode(body: body, envelope: .init(routingKey: json[path: "type"]?.stringValue ?? ""))
            else {
                logger.error(
                    "cannot read the kept event of lost run \(orphan.runID); it is not published again",
                    metadata: ["agentry.run.id": "\(orphan.runID)"])
                try? await context.store.markRepublished(orphan.runID)
                continue
            }
            do {
                try await context.retryChannel.publish(EventBus.message(for: event, toQueue: "agentry.agent.\(orphan.agentID)"))
                try await context.store.markRepublished(orphan.runID)
                logger.warning(
                    "republished the event of a handed-over run whose worker was lost",
                    metadata: [
                        "agentry.run.id": "\(orphan.runID)", "agentry.agent.id": "\(orphan.agentID)", "agentry.event.id": "\(event.id)",
                    ])
            } catch {
                logger.warning(
                    "cannot publish again the event of a lost handed-over run; trying with the next heartbeat",
                    metadata: [
                        "agentry.run.id": "\(orphan.runID)", "error": "\(error)",
                    ])
                return
            }
        }
    }

    private func reportInstances() async {
        while !isShuttingDown {
            await pause(for: .milliseconds(200))
            for runner in runners.withLockedValue({ Array($0.values) }) { await runner.flushInstance() }
        }
    }

    private func syncLoop(_ context: WorkerContext) async {
        // A timer feeds the same stream as control messages.
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: options.syncInterval)
                syncContinuation.yield()
            }
        }
        defer { ticker.cancel() }
        await sync(context)
        for await _ in syncRequests {
            if isShuttingDown { break }
            await sync(context)
        }
    }

    /// Logs the agents named by `--agents` that are not served, when that changes.
    func report(unserved now: [String: String], published: [String]) {
        let changed = unserved.withLockedValue { last in
            defer { last = now }
            return last != now
        }
        guard changed else { return }
        if now.isEmpty {
            logger.info("every agent named by --agents is served")
            return
        }
        let reasons = now.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
        logger.warning(
            "--agents names agents this worker does not serve: \(reasons); it takes them up once they are published and allowed here",
            metadata: [
                "agentry.agents.published": "\(published.sorted().joined(separator: ","))"
            ])
    }

    /// Brings the runners in line with the registry: one per published agent this worker serves, each in its
    /// desired state, on its active version, with its canary.
    func sync(_ context: WorkerContext) async {
        // Bundles installed from another host: their files first, so that a version published with them runs here.
        await bundles?.placeMissing()
        let active: [RuntimeStore.ActiveAgent]
        do {
            active = try await context.store.activeAgents()
        } catch {
            logger.warning("cannot read published agents", metadata: ["error": "\(error)"])
            return
        }
        var wanted = Set<String>()
        // Agents named by --agents that this worker does not serve, and why: a typo, or one not published yet, would
        // otherwise leave the worker running and serving nothing without a word.
        var notServed: [String: String] = [:]
        let published = active.filter { !$0.retired }.map(\.agentID)
        if let named = options.agents {
            for id in named where !published.contains(id) {
                notServed[id] = active.contains { $0.agentID == id } ? "retired" : "not published"
            }
        }
        defer { report(unserved: notServed, published: published) }
        for agent in active where options.agents?.contains(agent.agentID) ?? true {
            // A retired agent this worker was serving is served until its queue is drained (nothing new reaches it).
            if agent.retired {
                guard let runner = runners.withLockedValue({ $0[agent.agentID] }) else { continue }
                let waiting = (try? await context.connection.queueStatus("agentry.agent.\(agent.agentID)").messageCount) ?? 0
                guard waiting > 0 || runner.runningCount > 0 else { continue }
            }
            let definition: AgentDefinition
            do {
                // A published version never changes: the runner's copy is read again only when the version moved.
                if let current = runners.withLockedValue({ $0[agent.agentID]?.definition }), current.metadata.version == agent.version {
                    definition = current
                } else {
                    guard let stored = try await context.registry.version(agent.version, of: agent.agentID) else { continue }
                    definition = try AgentRegistry.decode(stored)
                }
            } catch {
                // Not served: its events wait in its queue until a version that reads is published.
                if unreadable.withLockedValue({ $0.insert("\(agent.agentID) \(agent.version)").inserted }) {
                    logger.error(
                        "cannot read the definition of \(agent.agentID) \(agent.version); it is not served until a corrected version is published",
                        metadata: ["error": "\(error)"])
                }
                if options.agents != nil { notServed[agent.agentID] = "its definition cannot be read" }
                continue
            }
            guard definition.workerLabels.allSatisfy({ options.labels[$0.key] == $0.value }) else {
                if options.agents != nil {
                    let labels = definition.workerLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                    notServed[agent.agentID] = "it runs only on workers labelled \(labels)"
                }
                continue
            }
            wanted.insert(agent.agentID)
            let runner = runners.withLockedValue { runners in
                if let existing = runners[agent.agentID] { return existing }
                let runner = AgentRunner(definition: definition, context: context)
                runners[agent.agentID] = runner
                return runner
            }
            do {
                try await runner.update(definition)
                await runner.follow(canary: agent.canary)
                switch agent.desired {
                case .running where runner.mode != .consuming:
                    // The queue as the registry has it: a broker that lost it (reset, new node) gets it back.
                    if !agent.retired { try await context.bus.declareAgentQueue(agent.agentID, patterns: agent.patterns) }
                    try await runner.start()
                case .paused where runner.mode == .consuming:
                    await runner.pause()
                case .paused where runner.mode == .stopped:
                    try await runner.startPaused()
                case .stopped where runner.mode != .stopped:
                    await runner.stop(grace: .zero, reason: "stopped by an operator")
                default:
                    break
                }
            } catch {
                logger.error("cannot start agent \(agent.agentID)", metadata: ["error": "\(error)"])
            }
        }
        let gone = runners.withLockedValue { runners in
            let gone = runners.filter { !wanted.contains($0.key) }
            for key in gone.keys { runners.removeValue(forKey: key) }
            return Array(gone.values)
        }
        for runner in gone {
            await runner.stop(grace: options.shutdownGrace, reason: "agent retired or no longer served by this worker")
        }
    }
}
