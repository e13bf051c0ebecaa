public import AMQP
public import AgentryBus
import AgentryCore
public import AgentryStore
import CSpawn
import Foundation
public import Logging
public import ServiceLifecycle
import UnixSignals

/// `agentry worker`: connects to RabbitMQ and PostgreSQL (waiting for them), checks the schema, declares the
/// topology and runs the worker's services until SIGTERM/SIGINT: the event log service and the agents.
public struct Worker: Sendable {
    public let configuration: AgentryConfiguration
    public var eventLogOptions = EventLogService.Options()
    public var workerOptions = WorkerOptions()
    /// Run the event log service (consumers of `agentry.event-log` and `agentry.unhandled`). Default true.
    public var runsEventLog = true
    /// Run the scheduler (schedules' ticks and delayed events; one worker at a time leads it). Default true.
    public var runsScheduler = true
    public var schedulerOptions = Scheduler.Options()
    /// Services that run beside the worker once the broker, the bus and the database are ready (the admin endpoint).
    public var companions: (@Sendable (WorkerEnvironment) -> [any Service])?
    let logger: Logger

    public init(configuration: AgentryConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        // Handlers run as the worker's user: non-dumpable, the worker's /proc/<pid>/environ and memory (its database
        // and broker credentials) are closed to them, and so is ptrace.
        let rc = agentry_make_nondumpable()
        if rc != 0 {
            logger.warning(
                "cannot make the worker non-dumpable; handlers of its user can read its environment",
                metadata: ["error": "\(String(cString: strerror(rc)))"])
        }
        // The name the broker's and the database's connection lists show for this worker.
        let name = "agentry worker \(ProcessInfo.processInfo.hostName) pid \(ProcessInfo.processInfo.processIdentifier)"
        var amqpConfiguration = configuration.amqp
        if amqpConfiguration.options.connectionName == nil {
            amqpConfiguration.options.connectionName = name
        }
        let topology = try Topology.load(directory: configuration.topologyDirectory)
        let migrations = try Migration.load(directory: configuration.migrationsDirectory)
        var databaseConfiguration = configuration.database
        if databaseConfiguration.applicationName == DatabaseConfiguration.defaultApplicationName {
            databaseConfiguration.applicationName = name
        }
        let database = Database(configuration: databaseConfiguration, logger: logger)
        let connection = AMQPConnection(configuration: amqpConfiguration, logger: logger)
        logger.info(
            "connecting", metadata: ["amqp.server": "\(amqpConfiguration.redactedURL)", "db.server": "\(configuration.database.redactedURL)"])
        try await connection.connect(keepTrying: true)

        // Tracing to Langfuse, when configured: it outlives the runners (stopping runs still record their
        // generations) and sends what it holds once they have stopped, within its own grace.
        var workerOptions = self.workerOptions
        let tracing = configuration.langfuse.map { LangfuseExporter(configuration: $0, logger: logger) }
        if let tracing {
            workerOptions.tracing = tracing
            // Every llm call becomes a trace with its generation (besides any observer set already).
            let previous = workerOptions.llmObserver
            workerOptions.llmObserver = { call in
                previous?(call)
                tracing.record(LangfuseGeneration(call))
            }
        }
        let tracingTask = tracing.map { exporter in Task { await exporter.run() } }
        let setup = WorkerSetup(
            connection: connection, database: database, topology: topology, migrations: migrations,
            eventLogOptions: eventLogOptions, workerOptions: workerOptions, runsEventLog: runsEventLog,
            schedulerOptions: runsScheduler ? schedulerOptions : nil, companions: companions, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: database),
                    .init(service: setup, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            tracing?.shutdown()
            await tracingTask?.value
            await connection.close()
            throw error
        }
        tracing?.shutdown()
        await tracingTask?.value
        await connection.close()
    }
}

/// Waits for the database and the schema, declares the topology, then runs the worker's services.
struct WorkerSetup: Service {
    let connection: AMQPConnection
    let database: Database
    let topology: Topology
    let migrations: [Migration]
    let eventLogOptions: EventLogService.Options
    let workerOptions: WorkerOptions
    let runsEventLog: Bool
    /// nil: this worker does not run the scheduler.
    let schedulerOptions: Scheduler.Options?
    let companions: (@Sendable (WorkerEnvironment) -> [any Service])?
    let logger: Logger

    func run() async throws {
        // Until PostgreSQL answers, with the reason it does not; SIGTERM or SIGINT ends the wait (and the worker).
        do {
            try await cancelWhenGracefulShutdown {
                var delay = Duration.milliseconds(200)
                while true {
                    do {
                        try await database.ping()
                        return
                    } catch let error as CancellationError {
                        throw error
                    } catch {
                        logger.warning("waiting for PostgreSQL", metadata: ["error": "\(error)", "retry_in_ms": "\(delay.inMilliseconds)"])
                        try await Task.sleep(for: delay)
                        delay = min(delay * 2, .seconds(5))
                    }
                }
            }
        } catch is CancellationError {
            logger.info("stopped while waiting for PostgreSQL")
            return
        }
        let expected = migrations.map(\.version).max() ?? 0
        let current = try await Migrator.currentVersion(database: database, logger: logger) ?? 0
        guard current >= expected else {
            throw StoreError(
                .missingMigrations, "the database schema is at version \(current) but this worker needs \(expected): run `agentry migrate` first")
        }
        _ = try await topology.apply(on: connection)
        let bus = try await EventBus(connection: connection, logger: logger)
        let eventLog = EventLogService(
            connection: connection, bus: bus, store: EventLogStore(database: database, logger: logger),
            options: eventLogOptions, logger: logger)
        let agents = AgentWorker(
            connection: connection, bus: bus, database: database, topology: topology,
            options: workerOptions, logger: logger)
        let scheduler = schedulerOptions.map { options in
            Scheduler(bus: bus, database: database, workerID: agents.workerID, options: options, logger: logger)
        }
        // People's holds: every worker keeps them when it leads the role (see HoldKeeper).
        let keeper = HoldKeeper(database: database, keeperID: agents.workerID, logger: logger) { [logger] event in
            do {
                try await bus.publish(event)
            } catch {
                logger.warning("cannot announce \(event.type)", metadata: ["error": "\(error)"])
            }
        }
        logger.info(
            "worker ready",
            metadata: ["agentry.services": "\(runsEventLog ? "event-log, " : "")agents, holds\(scheduler == nil ? "" : ", scheduler")"])
        // Both handle the graceful shutdown themselves: the log flushes what it holds, the agents let running
        // tasks finish within the grace period.
        try await withThrowingTaskGroup(of: Void.self) { group in
            if runsEventLog { group.addTask { try await eventLog.run() } }
            group.addTask { try await agents.run() }
            if let scheduler { group.addTask { await scheduler.run() } }
            group.addTask { await keeper.run() }
            let environment = WorkerEnvironment(
                connection: connection, bus: bus, database: database, topology: topology,
                expectedSchemaVersion: expected)
            for service in companions?(environment) ?? [] {
                group.addTask { try await service.run() }
            }
            try await group.waitForAll()
        }
    }
}

/// What a worker's companion services get: the connected broker, the bus, the database and the topology.
public struct WorkerEnvironment: Sendable {
    public let connection: AMQPConnection
    public let bus: EventBus
    public let database: Database
    public let topology: Topology
    public let expectedSchemaVersion: Int
}
