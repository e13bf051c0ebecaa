import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// Settings and helpers shared by the integration tests, which talk to the real RabbitMQ and PostgreSQL that
/// `Scripts/services` starts (URLs from AGENTRY_AMQP_URL / AGENTRY_DATABASE_URL, else the defaults).
enum TestEnvironment {
    static let configuration: AgentryConfiguration = {
        do {
            // The migrations and topology built into the binaries under test.
            return try AgentryConfiguration.resolve()
        } catch {
            fatalError("test configuration: \(error)")
        }
    }()

    /// The repository root, from this file's path (Tests/IntegrationTests/Support/TestEnvironment.swift).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var logger: Logger {
        var logger = Logger(label: "agentry.test")
        logger.logLevel = ProcessInfo.processInfo.environment["AGENTRY_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }

    static func uniqueName(_ prefix: String = "t") -> String {
        "\(prefix)\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// A connected AMQP connection, or a failure that says how to start the broker.
    static func connect(vhost: String? = nil, options: ((inout AMQPConfiguration.Options) -> Void)? = nil) async throws -> AMQPConnection {
        var amqp = configuration.amqp
        if let vhost { amqp.virtualHost = vhost }
        options?(&amqp.options)
        let connection = AMQPConnection(configuration: amqp, logger: logger)
        do {
            try await connection.connect()
        } catch {
            Issue.record("RabbitMQ is not reachable at \(amqp.redactedURL): \(error). Start it with Scripts/services.")
            throw error
        }
        return connection
    }

    /// Applies the built-in migrations once per test process (safe to repeat: the migrator takes an advisory lock).
    static func migrate() async throws {
        let migrations = try Migration.load(directory: configuration.migrationsDirectory)
        _ = try await Migrator(configuration: configuration.database, logger: logger).migrate(migrations)
    }

    static func topology() throws -> Topology {
        try Topology.load(directory: configuration.topologyDirectory)
    }

    /// Runs `body` on a new database of its own, migrated unless `migrated` is false, with its URL (for a child
    /// process); drops it afterwards. For tests whose counts must be exact, or that change what every process of the
    /// shared database would see.
    static func withFreshDatabase(
        _ prefix: String, migrated: Bool = true,
        _ body: @Sendable (Database, String) async throws -> Void
    ) async throws {
        let base = configuration.database
        let name = "agentry_test_\(uniqueName(prefix))"
        // CREATE DATABASE copies template1 and fails (55006, object in use) while any other session is connected to
        // it, which a parallel CREATE DATABASE of another test process is for a moment: try again a few times.
        let created = try await eventually(timeout: .seconds(20)) {
            do {
                try await Database.with(base, logger: logger) { db in
                    try await db.client.query("CREATE DATABASE \(unescaped: name)", logger: logger)
                }
                return true
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "55006" {
                return false
            } catch {
                throw StoreError(.query, "cannot create the test database \(name): \(String(reflecting: error))")
            }
        }
        guard created else { throw StoreError(.query, "cannot create the test database \(name): template1 stayed in use for 20 s") }
        var fresh = base
        fresh.database = name
        let url = "postgres://\(fresh.user):\(fresh.password ?? "")@\(fresh.host):\(fresh.port)/\(name)"
        // WITH (FORCE) ends the sessions still on it (agentry processes the test started), but refuses (42501) when
        // one of them is an autovacuum worker, which only a superuser may end; a plain DROP DATABASE cancels
        // autovacuum itself. So: FORCE, else plain, tried again for a while.
        let drop: @Sendable () async throws -> Void = {
            let dropped = try await eventually(timeout: .seconds(20)) {
                for statement in ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)", "DROP DATABASE IF EXISTS \(name)"] {
                    do {
                        try await Database.with(base, logger: logger) { db in
                            _ = try await db.client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        return true
                    } catch let error as PSQLError where ["42501", "55006"].contains(error.serverInfo?[.sqlState]) {
                        continue
                    }
                }
                return false
            }
            if !dropped { throw StoreError(.query, "the test database \(name) stayed in use for 20 s") }
        }
        do {
            if migrated {
                let migrations = try Migration.load(directory: configuration.migrationsDirectory)
                _ = try await Migrator(configuration: fresh, logger: logger).migrate(migrations)
            }
            try await Database.with(fresh, logger: logger) { db in try await body(db, url) }
        } catch {
            try? await drop()
            throw StoreError(.query, "on the test database \(name): \(StoreError.describe(error))")
        }
        do {
            try await drop()
        } catch {
            throw StoreError(.query, "cannot drop the test database \(name): \(String(reflecting: error))")
        }
    }

    /// Runs a command and returns its exit status and output.
    @discardableResult
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        directory: URL? = nil
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        if let directory { process.currentDirectoryURL = directory }
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
        process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The Python of the virtual environment `Scripts/test` makes (`.build/test-venv`, with the test's packages from
    /// PyPI: selenium for the browser test); AGENTRY_TEST_PYTHON overrides.
    static let testPython: URL = {
        if let path = ProcessInfo.processInfo.environment["AGENTRY_TEST_PYTHON"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return repositoryRoot.appendingPathComponent(".build/test-venv/bin/python3")
    }()

    /// A queue's ready and unacknowledged counts (of the test vhost), from rabbitmqctl (which a blocked connection
    /// cannot hold up); nil when there is no such queue.
    static func queueCounts(_ queue: String, vhost: String? = nil) throws -> (ready: Int, unacked: Int)? {
        let listing = try TestEnvironment.run(
            "rabbitmqctl",
            [
                "list_queues", "-p", vhost ?? TestEnvironment.configuration.amqp.virtualHost, "-q",
                "--no-table-headers", "name", "messages_ready", "messages_unacknowledged",
            ])
        guard let line = listing.output.split(separator: "\n").first(where: { $0.hasPrefix("\(queue)\t") }) else { return nil }
        let fields = line.split(separator: "\t")
        guard fields.count == 3, let ready = Int(fields[1]), let unacked = Int(fields[2]) else { return nil }
        return (ready, unacked)
    }

    /// Waits until `queue` has no message ready and none delivered but unacknowledged: whatever reached it has been
    /// taken and settled.
    static func waitUntilSettled(_ queue: String, vhost: String? = nil, timeout: Duration = .seconds(20)) async throws -> Bool {
        try await eventually(timeout: timeout) { try queueCounts(queue, vhost: vhost).map { $0.ready == 0 && $0.unacked == 0 } ?? false }
    }

    /// `rabbitmqctl …`, failing the test with its output when it fails.
    static func rabbitmqctl(_ arguments: String...) throws {
        let result = try run("rabbitmqctl", arguments)
        if result.status != 0 { Issue.record("rabbitmqctl \(arguments.joined(separator: " ")) failed: \(result.output)") }
    }

    /// Runs `body` with RabbitMQ's memory alarm on (a watermark no broker stays under), which blocks every connection
    /// that publishes, broker-wide; the previous watermark is restored after, whatever happens. Returns whether the
    /// alarm was seen on while `body` ran (read after it).
    static func withMemoryAlarm<T>(_ body: () async throws -> T) async throws -> (result: T, alarmSeen: Bool) {
        let watermark = try run("rabbitmqctl", ["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let previous = Double(watermark) ?? 0.4
        defer { _ = try? run("rabbitmqctl", ["set_vm_memory_high_watermark", String(previous)]) }
        try rabbitmqctl("set_vm_memory_high_watermark", "0.0001")
        let result = try await body()
        let alarms = try run("rabbitmqctl", ["eval", "rabbit_alarm:get_alarms()."]).output
        return (result, alarms.contains("memory"))
    }

    /// A fresh vhost that guest may use, deleted by the caller with `deleteVhost`.
    static func makeVhost() throws -> String {
        let vhost = uniqueName("agentry-test-")
        try rabbitmqctl("add_vhost", vhost)
        try rabbitmqctl("set_permissions", "-p", vhost, configuration.amqp.user, ".*", ".*", ".*")
        return vhost
    }

    static func deleteVhost(_ vhost: String) {
        _ = try? run("rabbitmqctl", ["delete_vhost", vhost])
    }

    /// Waits until `condition` holds, checking every 50 ms, for at most `timeout`.
    static func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// The built `agentry` executable (built with the tests by `swift build --build-tests`).
    static var agentryExecutable: String {
        let candidates = [".build/debug/agentry", ".build/x86_64-unknown-linux-gnu/debug/agentry", ".build/aarch64-unknown-linux-gnu/debug/agentry"]
        for candidate in candidates {
            let path = repositoryRoot.appendingPathComponent(candidate).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return repositoryRoot.appendingPathComponent(".build/debug/agentry").path
    }
}

/// Collects values from concurrent tasks.
actor Collector<Value: Sendable> {
    private(set) var values: [Value] = []
    func append(_ value: Value) { values.append(value) }
    var count: Int { values.count }
}
