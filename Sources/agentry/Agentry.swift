import AMQP
import AgentryAdmin
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import ArgumentParser
import Foundation
import Logging
import Synchronization

@main
struct Agentry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentry",
        abstract: "Event-driven platform for autonomous agents, on RabbitMQ and PostgreSQL.",
        discussion: """
            Settings come from flags, then environment variables, then defaults:
              --amqp-url      AGENTRY_AMQP_URL      amqp://guest:guest@localhost:5672/%2f
              --database-url  AGENTRY_DATABASE_URL  postgres://agentry:agentry@localhost:5432/agentry
              --admin-addr    AGENTRY_ADMIN_ADDR    127.0.0.1:8000
                              AGENTRY_ADMIN_TOKEN   (none)
              --migrations    AGENTRY_MIGRATIONS_DIR  (built in)
              --topology      AGENTRY_TOPOLOGY_DIR    (built in)
            The RabbitMQ URL may be a comma-separated list of URLs, one per node of a cluster (same user, password and
            vhost in each): connections move to the next node when theirs goes away (docs/cluster.md).
            """,
        version: AgentryVersion.current,
        subcommands: [
            Worker.self, Admin.self, Publish.self, Events.self, Schedules.self, Agents.self, Runs.self, Workers.self, Locks.self, Dead.self,
            History.self, Migrate.self, TopologyCommand.self, Approvals.self, Budgets.self, Bundle.self,
            CatalogCommand.self,
        ],
        defaultSubcommand: nil)
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "RabbitMQ URL, or a comma-separated list of the URLs of a cluster's nodes (AGENTRY_AMQP_URL).")
    var amqpURL: String?

    @Option(
        name: .customLong("database-url"),
        help: """
            PostgreSQL URL (AGENTRY_DATABASE_URL). Query parameters: sslmode=disable|prefer|require|verify-full \
            (default prefer: TLS when offered, any certificate; require: TLS, any certificate; verify-full: TLS, the \
            certificate checked against the system's CAs or sslrootcert=FILE, and the host name), max_connections, and \
            the session limits statement_timeout (default 60s), lock_timeout (30s), idle_in_transaction_session_timeout \
            (60s), in PostgreSQL's units (500ms, 30s, 2min; 0 for none).
            """)
    var databaseURL: String?

    @Option(name: .customLong("admin-addr"), help: "Admin HTTP address HOST:PORT (AGENTRY_ADMIN_ADDR).")
    var adminAddress: String?

    @Option(name: .customLong("migrations"), help: "Directory of numbered SQL migrations to use instead of those built in (AGENTRY_MIGRATIONS_DIR).")
    var migrationsDirectory: String?

    @Option(name: .customLong("topology"), help: "Directory of topology YAML files to use instead of the built-in topology (AGENTRY_TOPOLOGY_DIR).")
    var topologyDirectory: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (AGENTRY_LOG_LEVEL).")
    var logLevel: String?

    func resolve() throws -> AgentryConfiguration {
        // A password on the command line shows in `ps` to every user of the host, and in shell histories.
        for (flag, url, variable) in [("--amqp-url", amqpURL, "AGENTRY_AMQP_URL"), ("--database-url", databaseURL, "AGENTRY_DATABASE_URL")] {
            if let url, Self.carriesPassword(url) {
                FileHandle.standardError.write(
                    Data(
                        "warning: \(flag) carries a password, which other users of this host can read in `ps`; set \(variable) in the environment instead\n"
                            .utf8))
            }
        }
        do {
            return try AgentryConfiguration.resolve(
                .init(
                    amqpURL: amqpURL, databaseURL: databaseURL, adminAddress: adminAddress,
                    migrationsDirectory: migrationsDirectory, topologyDirectory: topologyDirectory))
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Whether a URL has a password (`scheme://user:password@host`), parsable or not.
    static func carriesPassword(_ url: String) -> Bool {
        guard let scheme = url.range(of: "://") else { return false }
        let authority = url[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@") else { return false }
        return authority[..<at].contains(":")
    }

    func logger(_ label: String, default level: Logger.Level = .info) throws -> Logger {
        let text = logLevel ?? ProcessInfo.processInfo.environment["AGENTRY_LOG_LEVEL"]
        var resolved = level
        if let text {
            guard let parsed = Logger.Level(rawValue: text.lowercased()) else {
                throw ValidationError("AGENTRY_LOG_LEVEL (--log-level): '\(text)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            resolved = parsed
        }
        let chosen = resolved
        // The logging system may be bootstrapped once per process, and a command may open the runtime more than once.
        Self.bootstrapped.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = chosen
                return handler
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = chosen
        return logger
    }

    private static let bootstrapped = Mutex(false)
}

/// Prints a failure the way a user can act on it, and exits non-zero.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func fail(_ error: any Error) -> Failure {
    Failure("\(error)")
}

extension Agentry {
    struct Worker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a worker: the published agents and the event log service, until SIGTERM or SIGINT.",
            discussion: """
                Any number of workers may run, on any hosts. Each serves every published agent, or those named \
                with --agents, and only agents whose worker_labels its --label flags carry. On SIGTERM or SIGINT \
                it stops taking work, lets running tasks finish within --shutdown-grace, returns the rest to \
                their queues and exits 0.
                """)

        @OptionGroup var options: GlobalOptions

        @Option(help: "Serve only these agents (comma-separated ids); default: every published agent.")
        var agents: String?

        @Option(name: .customLong("label"), help: "A label of this worker, KEY=VALUE (repeatable), matched against agents' worker_labels.")
        var labels: [String] = []

        @Option(help: "Seconds running tasks get to finish on SIGTERM before their events go back to the queue.")
        var shutdownGrace: Double = 30

        @Option(help: "Seconds between heartbeats.")
        var heartbeatSeconds: Double = 2

        @Option(help: "Seconds without a heartbeat after which a worker counts as gone and its runs are taken over.")
        var workerExpirySeconds: Double = 10

        @Option(help: "Hours a stopped or lost worker stays listed before its row and its instances are deleted (its runs stay).")
        var workerRetentionHours: Double = 24

        @Option(
            help:
                "Days of history to keep: events (event_log) and finished runs (task_runs) older than this are deleted, once a minute, by one worker at a time. Default: keep everything."
        )
        var historyRetentionDays: Double?

        @Option(help: "Seconds between re-reads of the published agents (control messages trigger one at once).")
        var syncSeconds: Double = 5

        @Option(
            help:
                "Seconds after which a running task's delivery is acked early and its event kept with the run (checked every quarter of it, at most every 10 s); keep it at least 10 s under RabbitMQ's consumer_timeout (30 min by default)."
        )
        var ackDeadlineSeconds: Double = 1500

        @OptionGroup var admin: AdminOptions

        @Flag(help: "Do not serve the admin endpoint from this worker.")
        var noAdmin = false

        @Option(help: "Seconds a run waits for the resources its agent declares before it fails (and is retried per the agent's policy).")
        var lockWaitSeconds: Double = 600

        @Option(help: "How deep run trees may grow: a run at this depth may not delegate (a root run is at 0).")
        var maxDelegationDepth = DelegationLimits().maxDepth

        @Option(help: "The most tasks one run may delegate at a time.")
        var maxDelegatedTasks = DelegationLimits().maxChildren

        @Flag(help: "Do not run the event log service on this worker (another worker runs it).")
        var noEventLog = false

        @Option(
            name: .customLong("exec-allow"),
            help:
                "A program or directory exec handlers may start (repeatable; AGENTRY_EXEC_ALLOW, colon-separated). Default: /usr/local/bin/blackscreen-recover; the bundles directory is always allowed. Allowing a shell allows anything."
        )
        var execAllow: [String] = []

        @Option(
            name: .customLong("bundles-dir"),
            help: ArgumentHelp(
                "Where installed bundles' files are (AGENTRY_BUNDLES_DIR; default /var/lib/agentry/bundles): exec handlers may also start the programs under it.",
                valueName: "DIR"))
        var bundlesDirectory: String?

        @Option(
            name: .customLong("exec-user"),
            help: ArgumentHelp(
                "Run exec handlers as this user (AGENTRY_EXEC_USER), e.g. nobody: they then cannot read the worker's credentials even when it runs as root. Default: the worker's own user.",
                valueName: "USER"))
        var execUser: String?

        @Option(
            name: .customLong("http-deny"),
            help:
                "An address range (CIDR) http handlers may not connect to (repeatable; AGENTRY_HTTP_DENY, comma-separated; 'none' for no list). Default: 169.254.0.0/16 and fe80::/10."
        )
        var httpDeny: [String] = []

        @Flag(help: "Do not run the scheduler on this worker (schedules' ticks and delayed events; other workers run it).")
        var noScheduler = false

        @Option(
            name: .customLong("llm-prices"),
            help: ArgumentHelp(
                "A YAML price table per model (AGENTRY_LLM_PRICES): the cost of runs that report tokens but no cost (docs/llm.md).",
                valueName: "FILE"))
        var llmPrices: String?

        @Option(help: "Events written to event_log per statement.")
        var logBatchSize: Int = 500

        @Option(help: "Longest wait, in milliseconds, before a partial batch is written.")
        var logBatchLatencyMs: Int = 50

        func validate() throws {
            guard logBatchSize > 0 else { throw ValidationError("--log-batch-size must be positive, got \(logBatchSize)") }
            guard logBatchLatencyMs > 0 else { throw ValidationError("--log-batch-latency-ms must be positive, got \(logBatchLatencyMs)") }
            for label in labels where label.split(separator: "=", maxSplits: 1).count != 2 || label.hasPrefix("=") {
                throw ValidationError("--label '\(label)' is not KEY=VALUE (e.g. --label lab=lab-1)")
            }
            guard shutdownGrace >= 0 else { throw ValidationError("--shutdown-grace must not be negative, got \(shutdownGrace)") }
            guard heartbeatSeconds > 0 else { throw ValidationError("--heartbeat-seconds must be positive, got \(heartbeatSeconds)") }
            guard workerExpirySeconds > heartbeatSeconds * 2 else {
                throw ValidationError(
                    "--worker-expiry-seconds (\(workerExpirySeconds)) must be more than twice --heartbeat-seconds (\(heartbeatSeconds))")
            }
            guard workerRetentionHours > 0, workerRetentionHours <= 87_600 else {
                throw ValidationError("--worker-retention-hours must be more than 0 and at most 87600 (ten years), got \(workerRetentionHours)")
            }
            if let days = historyRetentionDays {
                guard days > 0, days <= 36_500 else {
                    throw ValidationError("--history-retention-days must be more than 0 and at most 36500 (a hundred years), got \(days)")
                }
            }
            guard ackDeadlineSeconds > 0 else { throw ValidationError("--ack-deadline-seconds must be positive, got \(ackDeadlineSeconds)") }
            guard syncSeconds > 0 else { throw ValidationError("--sync-seconds must be positive, got \(syncSeconds)") }
            guard lockWaitSeconds > 0 else { throw ValidationError("--lock-wait-seconds must be positive, got \(lockWaitSeconds)") }
            guard maxDelegationDepth >= 1 else { throw ValidationError("--max-delegation-depth must be at least 1, got \(maxDelegationDepth)") }
            guard maxDelegatedTasks >= 1 else { throw ValidationError("--max-delegated-tasks must be at least 1, got \(maxDelegatedTasks)") }
        }

        /// The flags, else the environment, else the defaults.
        func handlerPolicy(environment: [String: String]) throws -> HandlerPolicy {
            var policy = HandlerPolicy()
            if !execAllow.isEmpty {
                policy.execAllow = ExecAllowlist(execAllow)
            } else if let fromEnvironment = ExecAllowlist.fromEnvironment(environment["AGENTRY_EXEC_ALLOW"]) {
                policy.execAllow = fromEnvironment
            }
            let deny =
                !httpDeny.isEmpty
                ? httpDeny
                : (environment["AGENTRY_HTTP_DENY"]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
            if !deny.isEmpty {
                policy.httpDeny = try deny.filter { $0 != "none" }.map { try AddressRange($0) }
            }
            if let name = execUser ?? environment["AGENTRY_EXEC_USER"].flatMap({ $0.isEmpty ? nil : $0 }) {
                do {
                    policy.execUser = try ExecUser.lookUp(name)
                } catch {
                    throw ValidationError(error.description)
                }
                if policy.execUser?.uid != 0, !ExecUser.workerIsRoot {
                    throw ValidationError(
                        "--exec-user \(name) needs a worker that runs as root (only root may switch users); run the worker as the user handlers should have instead"
                    )
                }
            } else if ExecUser.workerIsRoot {
                FileHandle.standardError.write(
                    Data(
                        "warning: this worker runs as root and so do its exec handlers, which can then read its credentials (/proc/<pid>/environ); run it as another user, or give --exec-user nobody (SECURITY.md)\n"
                            .utf8))
            }
            return policy
        }

        func run() async throws {
            let configuration = try options.resolve()
            let logger = try options.logger("agentry.worker")
            var worker = AgentryRuntime.Worker(configuration: configuration, logger: logger)
            worker.eventLogOptions.batchSize = logBatchSize
            worker.eventLogOptions.maxLatency = .milliseconds(logBatchLatencyMs)
            worker.runsEventLog = !noEventLog
            worker.runsScheduler = !noScheduler
            if let agents {
                worker.workerOptions.agents = Set(agents.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            }
            for label in labels {
                let parts = label.split(separator: "=", maxSplits: 1).map(String.init)
                worker.workerOptions.labels[parts[0]] = parts[1]
            }
            worker.workerOptions.shutdownGrace = .milliseconds(Int64(shutdownGrace * 1000))
            worker.workerOptions.heartbeatInterval = .milliseconds(Int64(heartbeatSeconds * 1000))
            worker.workerOptions.workerExpiry = .milliseconds(Int64(workerExpirySeconds * 1000))
            worker.workerOptions.workerRetention = .milliseconds(Int64(workerRetentionHours * 3_600_000))
            worker.workerOptions.historyRetention = historyRetentionDays.map { .milliseconds(Int64($0 * 86_400_000)) }
            worker.workerOptions.syncInterval = .milliseconds(Int64(syncSeconds * 1000))
            worker.workerOptions.ackDeadline = .milliseconds(Int64(ackDeadlineSeconds * 1000))
            worker.workerOptions.lockWait = .milliseconds(Int64(lockWaitSeconds * 1000))
            worker.workerOptions.delegationLimits = DelegationLimits(maxDepth: maxDelegationDepth, maxChildren: maxDelegatedTasks)
            worker.workerOptions.handlerPolicy = try handlerPolicy(environment: ProcessInfo.processInfo.environment)
            // Installed bundles' programs run from the bundles directory.
            var bundles = configuration.bundles
            if let bundlesDirectory, !bundlesDirectory.isEmpty { bundles.directory = bundlesDirectory }
            worker.workerOptions.handlerPolicy.execAllow = worker.workerOptions.handlerPolicy.execAllow.addingBundles(bundles.absoluteDirectory)
            worker.workerOptions.bundlesDirectory = bundles.absoluteDirectory
            worker.workerOptions.budgetCalendar = configuration.budgetCalendar
            // Read and checked now: a bad price table stops the worker before it takes any work.
            if let path = llmPrices ?? ProcessInfo.processInfo.environment["AGENTRY_LLM_PRICES"].flatMap({ $0.isEmpty ? nil : $0 }) {
                do {
                    worker.workerOptions.llmPrices = try LLMPriceTable.load(path: path)
                } catch {
                    throw Failure("the LLM price table (--llm-prices, AGENTRY_LLM_PRICES) cannot be used:\n\(error.description)")
                }
            }
            // Where exec handlers call back with their run tokens: AGENTRY_ADMIN_URL as the handlers should reach it,
            // else this worker's own admin endpoint.
            worker.workerOptions.adminURL = ProcessInfo.processInfo.environment["AGENTRY_ADMIN_URL"].flatMap { $0.isEmpty ? nil : $0 }
            if !noAdmin {
                let adminConfiguration = try admin.resolve(configuration)
                let managementURL = AdminOptions.managementURL(configuration)
                let bundleSettings = bundles
                worker.workerOptions.adminURL = worker.workerOptions.adminURL ?? adminConfiguration.callbackURL
                worker.companions = { environment in
                    // A pool of its own: admin requests neither wait behind the worker's claims and outcomes nor take
                    // their connections, and fail with the reason while PostgreSQL does not answer.
                    let database = AdminServer.database(for: environment.database.configuration, logger: logger)
                    return [
                        database,
                        AdminServer(
                            configuration: adminConfiguration,
                            dependencies: AdminDependencies(
                                database: database, connection: environment.connection,
                                bus: environment.bus, topology: environment.topology,
                                expectedSchemaVersion: environment.expectedSchemaVersion, logger: logger,
                                budgetCalendar: configuration.budgetCalendar, bundles: bundleSettings),
                            managementURL: managementURL, logger: logger),
                    ]
                }
            }
            do {
                try await worker.run()
            } catch {
                throw fail(error)
            }
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish an event and wait for the broker's confirm.",
            discussion: "Example: agentry publish alert.blackscreen --payload '{\"device_id\": \"tv-1\"}' --priority critical")

        @OptionGroup var options: GlobalOptions

        @Argument(help: "Event type, e.g. alert.blackscreen.")
        var type: String

        @Option(help: "Payload: a JSON object.")
        var payload: String = "{}"

        @Option(help: "critical, high, normal or low.")
        var priority: String = "normal"

        @Option(help: "Who publishes (recorded with the event).")
        var source: String = "cli"

        @Option(help: "Correlation id to attach.")
        var correlationId: String?

        @Option(
            help: "The event's id (default: a new UUID). Publishing again with the same id is one event: the event log and the agents take it once.")
        var id: String?

        @Option(help: "Deliver it at this time (ISO 8601, e.g. 2026-12-24T08:00:00Z) instead of now: it is kept in PostgreSQL until then.")
        var at: String?

        @Option(help: "Deliver it after this long (30s, 5m, 1h30m, 2d) instead of now: it is kept in PostgreSQL until then.")
        var delay: String?

        /// When to deliver it; nil: now.
        func deliveryTime() throws -> Date? {
            if let at { return try timeOption(at, flag: "--at") }
            if let delay {
                guard let seconds = parseDelay(delay) else { throw ValidationError("--delay '\(delay)' is not a duration like 30s, 5m, 1h30m or 2d") }
                return Date().addingTimeInterval(seconds)
            }
            return nil
        }

        /// The checks of the arguments, before anything connects (ArgumentParser prints this command's usage with them).
        func validate() throws {
            if let problem = EventType.problem(with: type) { throw ValidationError(problem) }
            _ = try priorityOption(priority)
            _ = try jsonObjectOption(payload, flag: "--payload")
            if at != nil && delay != nil { throw ValidationError("give --at or --delay, not both") }
            _ = try deliveryTime()
            if let id, EventID(id) == nil { throw ValidationError("--id '\(id)' is not an event id (1…255 bytes, no NUL)") }
        }

        func run() async throws {
            let level = try priorityOption(priority)
            let object = try jsonObjectOption(payload, flag: "--payload")
            var event = Event(type: type, payload: object, priority: level, source: source, correlationID: correlationId)
            if let id, let eventID = EventID(id) { event.id = eventID }
            if let deliverAt = try deliveryTime() {
                // The event's timestamp is its delivery time: when it enters the bus.
                event.timestamp = deliverAt
                let delayedEvent = event
                let kept = try await withSchedules(options) { _, delayed in try await delayed.add(delayedEvent, deliverAt: deliverAt) }
                print(
                    kept
                        ? "kept \(event.type) \(event.id) priority \(event.priority.name) for \(Timestamp.format(deliverAt))"
                        : "event \(event.id) was kept before; nothing changed (agentry events scheduled)")
                return
            }
            let configuration = try options.resolve()
            let logger = try options.logger("agentry.publish", default: .warning)
            let connection = AMQPConnection(configuration: configuration.amqp, logger: logger)
            do {
                try await connection.connect()
                let bus = try await EventBus(connection: connection, logger: logger)
                try await bus.publish(event)
            } catch {
                await connection.close()
                throw fail(error)
            }
            await connection.close()
            print("published \(event.type) \(event.id) priority \(event.priority.name)")
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the migrations the database does not have yet, in order, each in a transaction.")

        @OptionGroup var options: GlobalOptions

        func run() async throws {
            let configuration = try options.resolve()
            let logger = try options.logger("agentry.migrate", default: .warning)
            do {
                let migrations = try Migration.load(directory: configuration.migrationsDirectory)
                let outcome = try await Migrator(configuration: configuration.database, logger: logger).migrate(migrations)
                for migration in migrations where outcome.applied.contains(migration.version) {
                    print("applied \(String(format: "%04d", migration.version))_\(migration.name)")
                }
                print(
                    "schema at version \(migrations.last?.version ?? 0): \(outcome.applied.count) applied now, \(outcome.alreadyApplied.count) already applied"
                )
            } catch {
                throw fail(error)
            }
        }
    }

    struct TopologyCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "topology", abstract: "Declare or export RabbitMQ's exchanges, queues and bindings.",
            subcommands: [Apply.self, Export.self])

        struct Apply: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Declare the topology (idempotent: a second run changes nothing).")
            @OptionGroup var options: GlobalOptions

            func run() async throws {
                let configuration = try options.resolve()
                let logger = try options.logger("agentry.topology", default: .warning)
                let connection = AMQPConnection(configuration: configuration.amqp, logger: logger)
                do {
                    let topology = try AgentryBus.Topology.load(directory: configuration.topologyDirectory)
                    try await connection.connect()
                    let changes = try await topology.apply(on: connection)
                    for change in changes { print(change) }
                    let created = changes.filter { $0.action == .created }.count
                    print(created == 0 ? "topology up to date: nothing created" : "topology applied: \(created) created")
                } catch {
                    await connection.close()
                    throw fail(error)
                }
                await connection.close()
            }
        }

        struct Export: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print the topology as RabbitMQ definitions JSON (for rabbitmqctl import_definitions or the management UI).")
            @OptionGroup var options: GlobalOptions

            @Option(help: "Virtual host to write into the definitions (default: the one of AGENTRY_AMQP_URL).")
            var vhost: String?

            func run() async throws {
                let configuration = try options.resolve()
                do {
                    let topology = try AgentryBus.Topology.load(directory: configuration.topologyDirectory)
                    print(topology.definitionsJSON(virtualHost: vhost ?? configuration.amqp.virtualHost))
                } catch {
                    throw fail(error)
                }
            }
        }
    }
}
