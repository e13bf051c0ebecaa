import AMQP
import AgentryBus
import AgentryCore
import AgentryRuntime
import AgentryStore
import Foundation
import Logging
import PostgresNIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real `agentry worker` process serving the given agents, its output in a log file.
final class WorkerProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched from the test that owns this value, one call at a time.
    let process = Process()
    let log: URL

    init(
        agents: [String], extra: [String] = [], environment overrides: [String: String] = [:],
        executable: String = TestEnvironment.agentryExecutable, directory: URL? = nil, eventLog: Bool = false
    ) throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-worker-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: executable)
        if let directory { process.currentDirectoryURL = directory }
        process.arguments =
            [
                "worker", "--agents", agents.joined(separator: ","), "--heartbeat-seconds", "0.5",
                "--worker-expiry-seconds", "3", "--sync-seconds", "1",
            ]
            + (eventLog ? [] : ["--no-event-log"])
            + (extra.contains("--admin-addr") ? [] : ["--no-admin"]) + extra
        var environment = ProcessInfo.processInfo.environment
        // The tests' handlers run programs from anywhere (/bin/sh, /bin/sleep, …); HandlerSafetyTests checks the list.
        environment["AGENTRY_EXEC_ALLOW"] = "/"
        environment.merge(overrides) { _, new in new }
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to end (SIGKILL after `timeout`) and returns its exit status.
    @discardableResult
    func wait(timeout: Duration = .seconds(40)) async -> Int32 {
        await waitForExit(process, timeout: timeout)
    }

    func stop() async {
        if process.isRunning { signal(SIGTERM) }
        await wait()
        try? FileManager.default.removeItem(at: log)
    }
}

/// The runtime pieces a worker test needs, on the default vhost and database.
struct WorkerHarness: Sendable {
    let registry: AgentRegistry
    let bus: EventBus
    let connection: AMQPConnection
    let store: RuntimeStore
    let database: Database

    func publishAgent(_ yaml: String) async throws -> AgentDefinition {
        let definition = try AgentDefinition.parse(yaml: yaml)
        _ = try await registry.register(definition)
        _ = try await registry.publish(agentID: definition.metadata.id)
        return definition
    }

    /// Retires the test's agent (so that no later worker serves it) and deletes its queue.
    func cleanup(_ agentID: String) async {
        _ = try? await registry.retire(agentID: agentID)
        _ = try? await connection.deleteQueue("agentry.agent.\(agentID)")
    }

    func runs(_ agentID: String) async throws -> [TaskRun] {
        try await store.runs(agentID: agentID, limit: 10_000)
    }

    /// Waits until `worker` has been up `seconds` by its own heartbeats (so it has synced with the registry about
    /// `seconds` times, once a second in tests): for checks that something does not happen.
    func waitUntilUp(_ worker: WorkerProcess, for seconds: Double) async throws -> Bool {
        let pid = Int(worker.pid)
        return try await TestEnvironment.eventually(timeout: .seconds(seconds + 20)) {
            try await store.workers().contains { $0.pid == pid && $0.heartbeatAt.timeIntervalSince($0.startedAt) >= seconds }
        }
    }

    /// Waits until `condition` holds for the agent's runs.
    func waitForRuns(_ agentID: String, timeout: Duration = .seconds(20), _ condition: ([TaskRun]) -> Bool) async throws -> [TaskRun] {
        _ = try await TestEnvironment.eventually(timeout: timeout) { condition(try await runs(agentID)) }
        return try await runs(agentID)
    }
}

func withWorkerHarness(_ body: @Sendable (WorkerHarness) async throws -> Void) async throws {
    try await withRegistry { registry, bus, connection, database in
        try await body(
            WorkerHarness(
                registry: registry, bus: bus, connection: connection,
                store: RuntimeStore(database: database, logger: TestEnvironment.logger), database: database))
    }
}

/// An agent definition with a handler and config of the test's choosing.
func agentYAML(
    id: String, trigger: String, priority: String = "normal", filters: String? = nil, handler: String,
    config: String = "", extra: String = ""
) -> String {
    var yaml = """
        metadata: {id: \(id), name: Test \(id), version: 1.0.0, author: tests, description: Worker test agent.}
        goal: {type: continuous, description: Exercise the worker.}
        triggers:
          - type: \(trigger)
            priority: \(priority)

        """
    if let filters { yaml += "    filters: \(filters)\n" }
    yaml += "handler:\n" + handler.split(separator: "\n").map { "  \($0)\n" }.joined()
    if !config.isEmpty { yaml += "config:\n" + config.split(separator: "\n").map { "  \($0)\n" }.joined() }
    return yaml + extra
}

/// How many runs overlapped at most, from their recorded start and finish.
func maxOverlap(_ runs: [TaskRun]) -> Int {
    var points: [(Date, Int)] = []
    for run in runs where run.state != .skipped {
        points.append((run.startedAt, 1))
        points.append((run.finishedAt ?? .distantFuture, -1))
    }
    points.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
    var current = 0, best = 0
    for (_, delta) in points {
        current += delta
        best = max(best, current)
    }
    return best
}
