import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Dispatch
import Foundation
import Logging
import Synchronization

// MARK: - The worker runtime, end to end

/// End-to-end benchmarks of the worker runtime, with real `agentry worker` processes: a `noop` agent (built-in
/// handler, lifecycle events on) is registered and published under a fresh id, events are published with confirms to
/// `agentry.events`, routed to its queue, run and recorded in `task_runs`, and acked; the workers also run the event
/// log service, so every event and every lifecycle event is written to `event_log` meanwhile.
///
/// - `e2e N WORKERS`: N events are published while no worker runs, then WORKERS workers start and drain them
///   (rate = N / (last `finished_at` − first `started_at`) in `task_runs`); then, with the workers running, N more
///   events are published and run (rate = N / (last `finished_at` − first publish)).
/// - `latency RATE SECONDS [WORKERS]`: with the workers running and warmed up, events are published at a steady RATE
///   for SECONDS; publish-to-start is `task_runs.started_at` − the moment the event was handed to the client.
///
/// Both use the vhost `bench-e2e` (AGENTRY_BENCH_VHOST; created by Scripts/bench) on the broker of AGENTRY_AMQP_URL,
/// the database of AGENTRY_DATABASE_URL, and the `agentry` executable next to this one (AGENTRY_BENCH_AGENTRY), and
/// uses the built-in migrations and topology. The agent's queue is deleted at the end, and what the
/// run added to the database too unless AGENTRY_BENCH_KEEP=1 (which retires the agent instead, so that no worker
/// started later serves it) or AGENTRY_BENCH_HISTORY=1 (the same, until `agentry-bench cleanup` deletes the rows of
/// every retired bench agent: `Scripts/bench` measures on the run history a deployment has, see ``cleanup(logger:)``).
struct WorkerBench {
    static let eventTypePrefix = "bench.e2e"
    static let eventTypes = ["drain", "pipelined", "warmup", "latency", "low", "critical", "steady"].map { "\(eventTypePrefix).\($0)" }
    static let warmupSeconds = 2

    let logger: Logger
    let environment = ProcessInfo.processInfo.environment

    var virtualHost: String { environment["AGENTRY_BENCH_VHOST"] ?? "bench-e2e" }
    var maxParallel: Int { environment["AGENTRY_BENCH_MAX_PARALLEL"].flatMap(Int.init) ?? 64 }
    /// AGENTRY_BENCH_TASK_EVENTS=0 switches the agent's per-task lifecycle events off (`config.task_events: false`).
    var taskEvents: Bool { environment["AGENTRY_BENCH_TASK_EVENTS"] != "0" }

    // MARK: e2e

    func e2e(count: Int, workers: Int) async throws {
        try await withSetup(workers: workers) { setup in
            // Drain: a backlog of N events, then the workers start.
            let drainType = "\(Self.eventTypePrefix).drain"
            let published = try await setup.publishAll(count: count, type: drainType)
            report("e2e publish", count, "events", published, "events/s")
            let queued = try await setup.connection.queueStatus(setup.queue).messageCount
            if queued != UInt32(count) {
                warn("\(setup.queue) holds \(queued) messages after publishing, expected \(count)")
            }
            let clock = ContinuousClock()
            let spawned = clock.now
            try setup.workers.start(count: workers)
            try await setup.waitForRuns(type: drainType, count: count, backlog: true)
            let wall = clock.now - spawned
            let drain = try await setup.span(type: drainType)
            print(
                "e2e drain \(count) runs with \(workers) worker(s) in \(String(format: "%.3f", drain.seconds)) s: "
                    + "\(rate(count, drain.seconds)) events/s (first run started to last run finished, from task_runs)")
            print("e2e drain wall time with \(workers) worker(s), from starting the processes: \(String(format: "%.3f", wall.inSeconds)) s")
            try await setup.reportEventLog(after: spawned, clock: clock)

            // Pipelined: the workers run while N more events are published.
            let pipelinedType = "\(Self.eventTypePrefix).pipelined"
            let firstPublish = Date()
            let publishing = try await setup.publishAll(count: count, type: pipelinedType)
            report("e2e pipelined publish", count, "events", publishing, "events/s")
            try await setup.waitForRuns(type: pipelinedType, count: count)
            let last = try await setup.span(type: pipelinedType).last
            let pipelined = last.timeIntervalSince(firstPublish)
            print(
                "e2e pipelined \(count) events with \(workers) worker(s) in \(String(format: "%.3f", pipelined)) s: "
                    + "\(rate(count, pipelined)) events/s (first publish to last run finished)")
            try await setup.reportEventLog(after: nil, clock: clock)
        }
    }

    // MARK: latency

    func latency(rate eventsPerSecond: Int, seconds: Int, workers: Int) async throws {
        try await withSetup(workers: workers) { setup in
            try setup.workers.start(count: workers)
            try await setup.waitForConsumers(workers)
            // Warm-up at the same rate (pools, caches, the first claims), not counted.
            let warmupType = "\(Self.eventTypePrefix).warmup"
            let warmup = try await setup.publishSteadily(rate: eventsPerSecond, seconds: Self.warmupSeconds, type: warmupType)
            try await setup.waitForRuns(type: warmupType, count: warmup.count)

            let type = "\(Self.eventTypePrefix).latency"
            let sent = try await setup.publishSteadily(rate: eventsPerSecond, seconds: seconds, type: type)
            try await setup.waitForRuns(type: type, count: sent.count)
            let runs = try await setup.runTimes(type: type)
            var toStart: [Double] = []
            var toFinish: [Double] = []
            // Publish-to-start in two: to the delivery's arrival in the worker (the broker's part), then to the claim's
            // insert (the worker's and PostgreSQL's part).
            var toReceipt: [Double] = []
            var receiptToStart: [Double] = []
            for (eventID, publishedAt) in sent.published {
                guard let run = runs[eventID] else { continue }
                toStart.append(run.started.timeIntervalSince(publishedAt) * 1000)
                if let finished = run.finished { toFinish.append(finished.timeIntervalSince(publishedAt) * 1000) }
                if let received = run.received {
                    toReceipt.append(received.timeIntervalSince(publishedAt) * 1000)
                    receiptToStart.append(run.started.timeIntervalSince(received) * 1000)
                }
            }
            guard toStart.count == sent.count else {
                throw BenchError("found runs of \(toStart.count) of the \(sent.count) events published")
            }
            let achieved = Double(sent.count) / sent.elapsed.inSeconds
            print(
                "latency \(sent.count) events at \(eventsPerSecond) events/s for \(seconds) s (achieved \(String(format: "%.1f", achieved)) events/s), "
                    + "\(workers) worker(s), after a \(Self.warmupSeconds) s warm-up")
            print("latency publish-to-start ms: \(Percentiles(toStart))")
            print("latency publish-to-finish ms: \(Percentiles(toFinish))")
            if receiptToStart.count == sent.count {
                print("latency publish-to-receipt ms (the broker's part): \(Percentiles(toReceipt))")
                print("latency receipt-to-start ms (the worker's claim): \(Percentiles(receiptToStart))")
            }
            // The timestamp of each run's agent.task.started event, from event_log: stamped as the run's claim is
            // written (task_runs.started_at is taken within that statement).
            try await setup.reportEventLog(after: nil, clock: ContinuousClock())
            let announced = try await setup.startAnnouncements(type: type)
            var toAnnounced: [Double] = []
            for (eventID, publishedAt) in sent.published {
                if let at = announced[eventID] { toAnnounced.append(at.timeIntervalSince(publishedAt) * 1000) }
            }
            if toAnnounced.count == sent.count {
                print("latency publish-to-agent.task.started ms: \(Percentiles(toAnnounced)) (ms-precision timestamps)")
            } else {
                warn("only \(toAnnounced.count) of \(sent.count) agent.task.started events are in event_log")
            }
        }
    }

    // MARK: Setup and teardown

    /// Migrates, declares the topology in the vhost, registers and publishes a fresh noop agent, runs `body`, then
    /// stops the workers and removes what the run created.
    func withSetup(workers: Int, handler: String = "builtin: noop", _ body: @escaping @Sendable (Setup) async throws -> Void) async throws {
        let database = try DatabaseConfiguration(url: environment["AGENTRY_DATABASE_URL"] ?? "postgres://agentry:agentry@localhost:5432/agentry")
        let amqp = try amqpConfiguration(virtualHost: virtualHost)
        let executable = try agentryExecutable()
        let logger = self.logger
        let agentID = "bench-noop-\(UUID().uuidString.prefix(8).lowercased())"
        let runTag = Self.runTag(agentID)
        let maxParallel = self.maxParallel
        let keep = environment["AGENTRY_BENCH_KEEP"] == "1" || environment["AGENTRY_BENCH_HISTORY"] == "1"
        let logDirectory = ".build/agentry-bench"
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)

        _ = try await Migrator(configuration: database, logger: logger).migrate(Migration.builtIn)
        let topology = Topology.builtIn
        let connection = AMQPConnection(configuration: amqp, logger: logger)
        do {
            try await connection.connect()
        } catch {
            throw BenchError(
                "cannot connect to vhost '\(virtualHost)' (create it: rabbitmqctl add_vhost \(virtualHost); "
                    + "rabbitmqctl set_permissions -p \(virtualHost) guest \".*\" \".*\" \".*\"): \(error)")
        }
        let workerEnvironment = [
            "AGENTRY_AMQP_URL": try amqpURL(virtualHost: virtualHost),
            "AGENTRY_DATABASE_URL": environment["AGENTRY_DATABASE_URL"] ?? "postgres://agentry:agentry@localhost:5432/agentry",
            "AGENTRY_LOG_LEVEL": environment["AGENTRY_BENCH_WORKER_LOG_LEVEL"] ?? "warning",
        ]
        let processes = WorkerProcesses(
            executable: executable, agentID: agentID, environment: workerEnvironment,
            logDirectory: logDirectory)
        let outcome: Result<Void, any Error> = await Result {
            try await Database.with(database, logger: logger) { db in
                _ = try await topology.apply(on: connection)
                for queue in [Topology.eventLogQueue, Topology.unhandledQueue] {
                    let status = try await connection.queueStatus(queue)
                    if status.consumerCount > 0 {
                        throw BenchError(
                            "\(queue) in vhost \(amqp.virtualHost) has \(status.consumerCount) consumer(s): stop the workers running there first")
                    }
                    _ = try await connection.purgeQueue(queue)
                }
                let bus = try await EventBus(connection: connection, logger: logger)
                let registry = AgentRegistry(store: AgentRegistryStore(database: db, logger: logger), bus: bus, topology: topology, logger: logger)
                let definition = try AgentDefinition.parse(
                    yaml: Self.agentYAML(
                        id: agentID, maxParallel: maxParallel, taskEvents: taskEvents,
                        handler: handler), file: agentID)
                _ = try await registry.register(definition)
                _ = try await registry.publish(agentID: agentID)
                let setup = Setup(
                    agentID: agentID, runTag: runTag, queue: Topology.agentQueue(agentID).name, connection: connection,
                    bus: bus, db: db, workers: processes, logger: logger)
                let result = await Result { try await body(setup) }
                await processes.stopAll()
                await setup.deleteQueue()
                if keep {
                    // The rows stay (for a look, or as history until `cleanup`); the agent is retired, so that no
                    // worker started later serves it.
                    _ = try? await registry.retire(agentID: agentID)
                } else {
                    await setup.deleteRows()
                }
                try result.get()
            }
        }
        await processes.stopAll()
        await connection.close()
        if case .failure = outcome { processes.printLogTails() }
        try outcome.get()
    }

    /// Deletes what the runs of retired bench agents (`bench-noop-*`, left by AGENTRY_BENCH_HISTORY=1 or
    /// AGENTRY_BENCH_KEEP=1) wrote to the database, then vacuums and analyzes those tables, so that the next
    /// measurement finds neither the dead rows nor statistics of rows that are gone. An agent a bench still runs is
    /// published, not retired, and stays.
    ///
    /// Why `Scripts/bench` keeps the rows until the end: a deployment's `task_runs` and `event_log` hold its history,
    /// and the claim statement's plan is made from their statistics. Deleting each drain's 10,000 runs right after it
    /// left the next drain's worker planning on a table whose statistics described rows just deleted: its claims
    /// took 3.2-3.6 ms instead of 0.6 (`pg_stat_statements`), and the drain ran at 3,700-4,300 events/s instead of
    /// 5,200-6,100 (docs/performance.md). A state a deployment meets only after deleting its run history.
    static func cleanup(logger: Logger) async throws {
        let environment = ProcessInfo.processInfo.environment
        let database = try DatabaseConfiguration(url: environment["AGENTRY_DATABASE_URL"] ?? "postgres://agentry:agentry@localhost:5432/agentry")
        try await Database.with(database, logger: logger) { db in
            let store = BenchmarkStore(database: db, logger: logger)
            let agents = try await store.retiredBenchAgents()
            guard !agents.isEmpty else {
                print("cleanup: no retired bench agent")
                return
            }
            try await deleteRows(of: agents, in: db, logger: logger)
            try await store.vacuumRuntimeTables()
            print("cleanup: deleted the rows of \(agents.count) retired bench agent(s); vacuumed and analyzed")
        }
    }

    /// The `source` of the events a bench agent's run publishes.
    static func runTag(_ agentID: String) -> String { "agentry-bench-\(agentID)" }

    /// Deletes everything the runs of these bench agents wrote to the database (their workers stopped by then): their
    /// events (by ``runTag(_:)``), lifecycle events, workers, instances, runs, slots and registrations.
    static func deleteRows(of agents: [String], in db: Database, logger: Logger) async throws {
        try await BenchmarkStore(database: db, logger: logger).deleteRows(of: agents, eventTypes: eventTypes, sources: agents.map(runTag))
    }

    static func agentYAML(id: String, maxParallel: Int, taskEvents: Bool, handler: String = "builtin: noop") -> String {
        """
        metadata:
          id: \(id)
          name: Benchmark no-op
          version: 1.0.0
          author: agentry-bench
          description: Does nothing; measures the worker runtime end to end.
        goal:
          type: continuous
          description: Measure the throughput and latency of the worker runtime.
        triggers:
          - type: \(eventTypePrefix).*
            priority: normal
        config:
          max_parallel_tasks: \(maxParallel)
          task_events: \(taskEvents)
        handler:
          \(handler)
        """
    }

    /// AGENTRY_AMQP_URL (or the default) with its vhost replaced.
    func amqpURL(virtualHost: String) throws -> String {
        let base = environment["AGENTRY_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/%2f"
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.~")
        // Every URL of a list (the nodes of a cluster) gets the vhost.
        let urls = try AMQPConfiguration.splitList(base).map { url in
            guard var components = URLComponents(string: url) else { throw BenchError("AGENTRY_AMQP_URL is not a URL") }
            components.percentEncodedPath = "/" + (virtualHost.addingPercentEncoding(withAllowedCharacters: allowed) ?? virtualHost)
            guard let url = components.string else { throw BenchError("cannot make an AMQP URL for vhost \(virtualHost)") }
            return url
        }
        return urls.joined(separator: ",")
    }

    /// The `agentry` executable: AGENTRY_BENCH_AGENTRY, else the one beside this program (same build configuration).
    func agentryExecutable() throws -> String {
        if let path = environment["AGENTRY_BENCH_AGENTRY"] { return path }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("agentry").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchError("no agentry executable at \(path): build it (swift build -c release --product agentry) or set AGENTRY_BENCH_AGENTRY")
        }
        return path
    }
}

func rate(_ count: Int, _ seconds: Double) -> String {
    String(format: "%.0f", seconds > 0 ? Double(count) / seconds : 0)
}

func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

/// p50, p90, p99 and max of a sample, nearest rank.
struct Percentiles: CustomStringConvertible {
    let p50: Double, p90: Double, p99: Double, max: Double, count: Int

    init(_ values: [Double]) {
        let sorted = values.sorted()
        func rank(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            return sorted[min(sorted.count - 1, Swift.max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
        }
        p50 = rank(0.50)
        p90 = rank(0.90)
        p99 = rank(0.99)
        max = sorted.last ?? .nan
        count = sorted.count
    }

    var description: String {
        String(format: "p50 %.1f p90 %.1f p99 %.1f max %.1f (n=%d)", p50, p90, p99, max, count)
    }
}

// MARK: - One run's agent, connections and workers

struct Setup: Sendable {
    let agentID: String
    let runTag: String
    let queue: String
    let connection: AMQPConnection
    let bus: EventBus
    let db: Database
    let workers: WorkerProcesses
    var benchStore: BenchmarkStore { BenchmarkStore(database: db, logger: logger) }
    let logger: Logger

    func event(_ type: String, _ index: Int, priority: Priority = .normal) -> Event {
        Event(type: type, payload: ["seq": .int(Int64(index))], priority: priority, source: runTag)
    }

    /// Publishes `count` events with confirms, at most 1,000 unconfirmed.
    func publishAll(count: Int, type: String, priority: Priority = .normal) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        try await windowed(count, window: 1000) { index in
            try await bus.publish(event(type, index, priority: priority))
        }
        return clock.now - start
    }

    struct Steady: Sendable {
        /// Event id → the moment the event was made, just before it was handed to the client.
        var published: [String: Date]
        var count: Int { published.count }
        var elapsed: Duration
    }

    /// Publishes at `rate` events per second for `seconds`, paced by the clock (it sleeps until the next event is
    /// due, then publishes every event due by then), each confirmed without holding up the next (at most 5,000
    /// unconfirmed). An event's time is taken when it is made, just before it is handed to the client.
    func publishSteadily(rate: Int, seconds: Int, type: String) async throws -> Steady {
        let total = rate * seconds
        let clock = ContinuousClock()
        let start = clock.now
        let published = try await withThrowingTaskGroup(of: Void.self, returning: [String: Date].self) { group in
            var published: [String: Date] = [:]
            published.reserveCapacity(total)
            var sent = 0
            var inFlight = 0
            while sent < total {
                let due = min(total, Int(((clock.now - start).inSeconds * Double(rate)).rounded(.down)) + 1)
                while sent < due {
                    if inFlight >= 5000 {
                        try await group.next()
                        inFlight -= 1
                    }
                    let event = event(type, sent)
                    published[event.id.rawValue] = event.timestamp
                    group.addTask { try await bus.publish(event) }
                    inFlight += 1
                    sent += 1
                }
                let next = start + .seconds(Double(sent) / Double(rate))
                if next > clock.now { try await Task.sleep(until: next, tolerance: .microseconds(100), clock: clock) }
            }
            try await group.waitForAll()
            return published
        }
        return Steady(published: published, elapsed: clock.now - start)
    }

    /// Waits until `count` runs for events of `type` succeeded; fails when none succeeds for `stall`, or when a worker
    /// exits. The count reads the agent's completions through their partial index (`task_runs_one_completion`), so
    /// it costs the database being measured little however many runs the table holds; it is read every 200 ms near
    /// the end, and less often (up to every 2 s) while much remains. Runs that ended otherwise (failed, cancelled, …)
    /// are counted only when the succeeded ones make no progress: that count has no index to go by.
    ///
    /// With `backlog` (the `count` events all wait in the agent's queue, as in a drain), it first waits for the broker
    /// to have handed them all out (the queue's ready count, read every 100 ms), which costs the database nothing: the
    /// count's heap reads grow with the runs, and took 16-140 ms of PostgreSQL's time each in a 50,000-event drain.
    func waitForRuns(type: String, count: Int, backlog: Bool = false, stall: Duration = .seconds(60)) async throws {
        let clock = ContinuousClock()
        if backlog {
            var waiting = StallWatch<UInt32>(stall: stall, clock: clock)
            while true {
                let ready = try await connection.queueStatus(queue).messageCount
                if ready == 0 { break }
                if let exited = workers.exited() { throw BenchError("worker \(exited) exited during the benchmark") }
                if waiting.stalled(at: ready) {
                    throw BenchError(
                        "timeout: \(ready) events still wait in \(queue), none taken in the last \(String(format: "%.0f", stall.inSeconds)) s")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        var progress = StallWatch<Int>(stall: stall, clock: clock)
        var reportedOthers = 0
        var lastRead: (at: ContinuousClock.Instant, succeeded: Int)?
        while true {
            let succeeded = try await benchStore.succeededRuns(agentID: agentID, type: type)
            if succeeded == progress.last {
                let others = try await benchStore.otherRuns(agentID: agentID, type: type)
                if others > reportedOthers {
                    warn("\(others) run(s) of \(type) ended other than succeeded (failed, cancelled, lost or skipped)")
                    reportedOthers = others
                }
            }
            if succeeded >= count { return }
            if let exited = workers.exited() { throw BenchError("worker \(exited) exited during the benchmark") }
            if progress.stalled(at: succeeded) {
                throw BenchError(
                    "timeout: \(succeeded) of \(count) runs of \(type) succeeded, none in the last \(String(format: "%.0f", stall.inSeconds)) s")
            }
            var pause = 0.2
            if let lastRead, succeeded > lastRead.succeeded {
                let rate = Double(succeeded - lastRead.succeeded) / (clock.now - lastRead.at).inSeconds
                pause = min(2, max(0.2, Double(count - succeeded) / rate / 2))
            }
            lastRead = (clock.now, succeeded)
            try await Task.sleep(for: .seconds(pause))
        }
    }

    /// Waits until the agent's queue has `count` consumers (the workers serve it).
    func waitForConsumers(_ count: Int) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while try await connection.queueStatus(queue).consumerCount < UInt32(count) {
            if let exited = workers.exited() { throw BenchError("worker \(exited) exited before consuming") }
            if clock.now > deadline { throw BenchError("timeout: \(queue) has fewer than \(count) consumers after 60 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The first start and the last finish of the succeeded runs of `type`.
    func span(type: String) async throws -> (first: Date, last: Date, seconds: Double) {
        guard let (first, last) = try await benchStore.span(agentID: agentID, type: type) else { throw BenchError("no runs of \(type)") }
        return (first, last, last.timeIntervalSince(first))
    }

    /// Event id → start and finish of its succeeded run.
    func runTimes(type: String) async throws -> [String: (received: Date?, started: Date, finished: Date?)] {
        try await benchStore.runTimes(agentID: agentID, type: type)
    }

    /// Event id → timestamp of the `agent.task.started` event of its run, as logged in event_log.
    func startAnnouncements(type: String) async throws -> [String: Date] {
        try await benchStore.startAnnouncements(agentID: agentID, type: type)
    }

    /// Waits (at most 60 s) until event_log holds every event this run published and the lifecycle events of every
    /// succeeded run (agent.task.started and agent.task.completed), and says how long after `start` that was.
    func reportEventLog(after start: ContinuousClock.Instant?, clock: ContinuousClock) async throws {
        let deadline = clock.now + .seconds(60)
        var logged = (events: 0, lifecycle: 0)
        var expected = (events: 0, lifecycle: 0)
        while true {
            let progress = try await benchStore.eventLogProgress(agentID: agentID, eventTypes: WorkerBench.eventTypes, source: runTag)
            logged = (progress.events, progress.lifecycle)
            // With AGENTRY_BENCH_TASK_EVENTS=0 the runs announce nothing.
            let perRun = ProcessInfo.processInfo.environment["AGENTRY_BENCH_TASK_EVENTS"] == "0" ? 0 : 2
            expected = (progress.runEvents, perRun * progress.succeeded)
            if logged.events >= expected.events && logged.lifecycle >= expected.lifecycle { break }
            if clock.now > deadline {
                warn(
                    "event log behind after 60 s: \(logged.events) of \(expected.events) events, \(logged.lifecycle) of \(expected.lifecycle) lifecycle events"
                )
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        if let start {
            print(
                "e2e event log: \(logged.events) events and \(logged.lifecycle) lifecycle events in event_log "
                    + "\(String(format: "%.3f", (clock.now - start).inSeconds)) s after the workers started")
        }
    }

    /// Deletes the agent's queue (with its bindings: a later run's events are not copied into it).
    func deleteQueue() async {
        do {
            try await connection.deleteQueue(queue)
        } catch {
            warn("cannot delete \(queue): \(error)")
        }
    }

    /// Deletes everything the run wrote to the database (the workers are stopped by then).
    func deleteRows() async {
        do {
            try await WorkerBench.deleteRows(of: [agentID], in: db, logger: logger)
        } catch {
            warn("cannot delete the rows of \(agentID): \(String(reflecting: error))")
        }
    }
}

/// A count that should keep moving (events leaving a queue, runs succeeding): says when it has not changed for `stall`.
struct StallWatch<Value: Equatable> {
    let stall: Duration
    let clock: ContinuousClock
    /// The value last seen; nil before the first.
    private(set) var last: Value?
    private var since: ContinuousClock.Instant

    init(stall: Duration, clock: ContinuousClock) {
        self.stall = stall
        self.clock = clock
        self.since = clock.now
    }

    /// Records `value`; true when it is the value seen before and has not changed for longer than `stall`.
    mutating func stalled(at value: Value) -> Bool {
        if value != last {
            last = value
            since = clock.now
            return false
        }
        return clock.now - since > stall
    }
}
