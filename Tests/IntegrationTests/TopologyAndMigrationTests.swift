import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite("Topology")
struct TopologyTests {
    @Test("apply declares everything, and a second run changes nothing")
    func applyIsIdempotent() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let connection = try await TestEnvironment.connect(vhost: vhost)
        defer { Task { await connection.close() } }
        let topology = try TestEnvironment.topology()
        let first = try await topology.apply(on: connection)
        #expect(first.filter { $0.action == .created }.count == topology.exchanges.count + topology.queues.count)
        let second = try await topology.apply(on: connection)
        #expect(second.allSatisfy { $0.action != .created })
        for queue in topology.queues {
            #expect(try await connection.queueExists(queue.name))
        }
        #expect(try await connection.exchangeExists(Topology.routeExchange))
    }

    @Test("a conflicting existing queue is named with the differing argument")
    func conflictNamesQueueAndArgument() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let connection = try await TestEnvironment.connect(vhost: vhost)
        defer { Task { await connection.close() } }
        try await connection.declare(QueueDeclaration(name: Topology.eventLogQueue, durable: true))
        let error = await #expect(throws: TopologyError.self) {
            _ = try await TestEnvironment.topology().apply(on: connection)
        }
        #expect(error?.message.contains("queue 'agentry.event-log'") == true)
        #expect(error?.message.contains("x-max-priority") == true)
    }

    @Test("export gives definitions that rabbitmqctl import_definitions accepts")
    func exportImports() async throws {
        let vhost = try TestEnvironment.makeVhost()
        defer { TestEnvironment.deleteVhost(vhost) }
        let topology = try TestEnvironment.topology()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(vhost).json")
        try topology.definitionsJSON(virtualHost: vhost).write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try TestEnvironment.run("rabbitmqctl", ["import_definitions", file.path])
        #expect(result.status == 0, "import_definitions said: \(result.output)")

        let connection = try await TestEnvironment.connect(vhost: vhost)
        defer { Task { await connection.close() } }
        // What was imported is exactly what apply declares: a second declaration with the same settings passes.
        let changes = try await topology.apply(on: connection)
        #expect(changes.allSatisfy { $0.action != .created })
    }

    @Test("the built-in topology is valid and has the contract's names")
    func repositoryTopology() throws {
        let topology = try TestEnvironment.topology()
        let exchanges = Set(topology.exchanges.map(\.name))
        let queues = Set(topology.queues.map(\.name))
        #expect(exchanges.isSuperset(of: ["agentry.events", "agentry.route", "agentry.unrouted"]))
        #expect(queues.isSuperset(of: ["agentry.event-log", "agentry.unhandled", "agentry.dead"]))
        let route = try #require(topology.exchanges.first { $0.name == "agentry.route" })
        #expect(route.kind == .topic)
        #expect(route.arguments["alternate-exchange"] == "agentry.unrouted")
        #expect(Topology.agentQueue("tv-watcher").name == "agentry.agent.tv-watcher")
        #expect(Topology.agentQueue("tv-watcher").arguments["x-max-priority"] == 4)
    }

    @Test("every pool and skill the examples use is declared in the built-in topology")
    func examplesReferToDeclaredPoolsAndSkills() throws {
        let topology = try TestEnvironment.topology()
        let examples = TestEnvironment.repositoryRoot.appendingPathComponent("examples")
        let agents = try FileManager.default.contentsOfDirectory(atPath: examples.appendingPathComponent("agents").path)
            .filter { $0.hasSuffix(".yaml") }.map { "agents/\($0)" }
        let bundled = try FileManager.default.contentsOfDirectory(atPath: examples.appendingPathComponent("bundles").path)
            .map { "bundles/\($0)/agents/\($0).yaml" }
        let files = agents + bundled
        #expect(agents.count >= 5 && bundled.count >= 7, "\(files)")
        for file in files {
            let text = try String(contentsOf: examples.appendingPathComponent(file), encoding: .utf8)
            let definition = try AgentDefinition.parse(yaml: text, file: file)
            for pool in definition.referencedPools { #expect(topology.eventPools[pool] != nil, "\(file): pool \(pool)") }
            for skill in definition.referencedSkills { #expect(topology.skills[skill] != nil, "\(file): skill \(skill)") }
        }
    }
}

@Suite("Migrations")
struct MigrationTests {
    @Test("the migrations and topology built into the binary are the repository's files, every one of them")
    func builtInMatchesFiles() throws {
        let sources = TestEnvironment.repositoryRoot.appendingPathComponent("Sources")
        let files = try Migration.load(directory: sources.appendingPathComponent("AgentryStore/Migrations").path)
        #expect(
            Migration.builtIn.map(\.version) == files.map(\.version),
            "a file of Sources/AgentryStore/Migrations is missing from Migration+BuiltIn.swift, or the reverse")
        #expect(Migration.builtIn == files, "a built-in migration differs from its file")
        #expect(try Migration.load(directory: nil) == files)
        let topology = try Topology.load(directory: sources.appendingPathComponent("AgentryBus/Topology").path)
        #expect(Topology.builtIn == topology, "Topology+BuiltIn.swift does not list every file of Sources/AgentryBus/Topology")
        #expect(try Topology.load(directory: nil) == topology)
    }

    @Test("agentry migrate run by two processes at once applies each migration once")
    func concurrentMigrate() async throws {
        try await TestEnvironment.withFreshDatabase("m", migrated: false) { db, url in
            let environment = ["AGENTRY_DATABASE_URL": url]
            let executable = TestEnvironment.agentryExecutable
            async let first = Task.detached { try TestEnvironment.run(executable, ["migrate"], environment: environment) }.value
            async let second = Task.detached { try TestEnvironment.run(executable, ["migrate"], environment: environment) }.value
            let results = try await [first, second]
            for result in results { #expect(result.status == 0, "agentry migrate said: \(result.output)") }

            let migrations = try Migration.load(directory: TestEnvironment.configuration.migrationsDirectory)
            let appliedLines = results.flatMap { $0.output.split(separator: "\n").filter { $0.hasPrefix("applied ") } }
            #expect(appliedLines.count == migrations.count, "each migration is applied by exactly one process: \(appliedLines)")
            var versions: [Int] = []
            for try await v in try await db.client.query("SELECT version FROM schema_migrations ORDER BY version", logger: TestEnvironment.logger)
                .decode(Int.self)
            {
                versions.append(v)
            }
            #expect(versions == migrations.map(\.version))
        }
    }

    @Test("an edited, already applied migration is refused with its name")
    func editedMigrationRefused() async throws {
        try await TestEnvironment.migrate()
        var migrations = try Migration.load(directory: TestEnvironment.configuration.migrationsDirectory)
        migrations[0].sql += "\n-- edited"
        let error = await #expect(throws: StoreError.self) {
            _ = try await Migrator(configuration: TestEnvironment.configuration.database, logger: TestEnvironment.logger).migrate(migrations)
        }
        #expect(error?.code == .migrationChanged)
        #expect(error?.message.contains(migrations[0].name) == true)
    }
}
