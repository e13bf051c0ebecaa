import AMQP
import AgentryBus
import AgentryRuntime
import AgentryStore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("agentry publish: bad input")
struct PublishCLITests {
    /// Runs `agentry publish` against a broker address where nothing listens, so that a check that happened only after
    /// connecting would show up as a connection error instead of the expected message.
    func publish(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(
            TestEnvironment.agentryExecutable, ["publish"] + arguments,
            environment: ["AGENTRY_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2f"])
    }

    @Test(
        "each bad argument is named, with where a payload's JSON breaks, before anything connects",
        arguments: [
            (["", "--payload", "{}"], "an event type must not be empty"),
            (["test.cli", "--payload", "{bad"], "--payload is not valid JSON (expected a string key in an object at byte 1): {bad"),
            (["test.cli", "--payload", "{\"a\": 1,}"], "at byte 8"),
            (["test.cli", "--payload", "[1, 2]"], "--payload must be a JSON object"),
            (["test.cli", "--priority", "urgent"], "--priority 'urgent' is not one of critical, high, normal, low"),
        ])
    func badInput(arguments: [String], expected: String) throws {
        let result = try publish(arguments)
        #expect(result.status != 0)
        #expect(result.output.contains("Error: ") && result.output.contains(expected), "\(result.output)")
        #expect(result.output.contains("Usage: agentry publish"), "the usage shown is publish's: \(result.output)")
        #expect(!result.output.contains("RabbitMQ"), "it never tried to connect: \(result.output)")
    }

    @Test("a valid event with the broker unreachable fails with the broker's address, not a usage message")
    func unreachableBroker() throws {
        let result = try publish(["test.cli", "--payload", "{\"device_id\": \"tv-1\"}", "--priority", "low"])
        #expect(result.status != 0)
        #expect(result.output.contains("127.0.0.1:1"), "\(result.output)")
        #expect(!result.output.contains("Usage:"), "\(result.output)")
    }
}

@Suite("PostgreSQL unreachable")
struct DatabaseUnreachableTests {
    static let nowhere = "postgres://agentry:agentry@127.0.0.1:1/agentry"

    @Test(
        "a command fails at once, naming the server and the reason (postgres-nio's pool alone would wait for ever)",
        .timeLimit(.minutes(1)))
    func command() throws {
        let started = ContinuousClock.now
        let result = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["runs", "list", "--database-url", Self.nowhere])
        let took = ContinuousClock.now - started
        #expect(result.status != 0)
        #expect(result.output.contains("PostgreSQL at postgres://agentry@127.0.0.1:1/agentry does not answer"), "\(result.output)")
        #expect(result.output.contains("Connection refused"), "the reason: \(result.output)")
        #expect(took < .seconds(30), "it took \(took)")
    }

    @Test("a worker waits for PostgreSQL, saying why, and SIGTERM ends the wait with exit 0", .timeLimit(.minutes(1)))
    func worker() async throws {
        let worker = try WorkerProcess(agents: ["none"], environment: ["AGENTRY_DATABASE_URL": Self.nowhere])
        #expect(try await TestEnvironment.eventually(timeout: .seconds(20)) { worker.output.contains("waiting for PostgreSQL") })
        #expect(worker.output.contains("Connection refused"), "\(worker.output)")
        worker.signal(SIGTERM)
        let status = await worker.wait(timeout: .seconds(20))
        #expect(status == 0, "exit status \(status): \(worker.output)")
        #expect(worker.output.contains("stopped while waiting for PostgreSQL"))
        await worker.stop()
    }
}

@Suite("A new user's first steps", .serialized)
struct NewUserTests {
    @Test("every example agent applies and publishes, blackscreen-exec after the subagents it names (shipped with it)")
    func examplesPublish() async throws {
        try await TestEnvironment.withFreshDatabase("examples") { _, url in
            let vhost = try TestEnvironment.makeVhost()
            defer { TestEnvironment.deleteVhost(vhost) }
            let amqp = TestEnvironment.configuration.amqp
            let environment = [
                "AGENTRY_DATABASE_URL": url,
                "AGENTRY_AMQP_URL": "amqp://\(amqp.user):\(amqp.password)@\(amqp.host):\(amqp.port)/\(vhost)",
            ]
            let agentry = TestEnvironment.agentryExecutable
            let examples = TestEnvironment.repositoryRoot.appendingPathComponent("examples/agents").path
            let topology = try TestEnvironment.run(agentry, ["topology", "apply"], environment: environment)
            #expect(topology.status == 0, "\(topology.output)")
            let applied = try TestEnvironment.run(agentry, ["agents", "apply", examples], environment: environment)
            #expect(applied.status == 0, "\(applied.output)")
            let bundles = TestEnvironment.repositoryRoot.appendingPathComponent("examples/bundles")
            for id in try FileManager.default.contentsOfDirectory(atPath: bundles.path) {
                let path = bundles.appendingPathComponent("\(id)/agents").path
                let bundled = try TestEnvironment.run(agentry, ["agents", "apply", path], environment: environment)
                #expect(bundled.status == 0, "\(bundled.output)")
            }
            for id in [
                "device-rebooter", "ticket-writer", "blackscreen-exec", "blackscreen-triage", "noop", "alert-logger",
                "offline-reporter", "device-check", "deploy-http", "poll-schedule",
            ] {
                let published = try TestEnvironment.run(agentry, ["agents", "publish", id], environment: environment)
                #expect(published.status == 0, "agents publish \(id): \(published.output)")
            }
            // poll-schedule's schedule triggers became its schedules.
            let schedules = try TestEnvironment.run(agentry, ["schedules", "list"], environment: environment)
            #expect(
                schedules.output.contains("agent:poll-schedule:device.poll ") && schedules.output.contains("agent:poll-schedule:device.poll.morning"),
                "\(schedules.output)")
        }
    }

    @Test(
        "the installed binary migrates, applies the topology and runs a worker from /tmp, with no source tree",
        .timeLimit(.minutes(2)))
    func installedBinary() async throws {
        try await TestEnvironment.withFreshDatabase("installed", migrated: false) { _, url in
            let vhost = try TestEnvironment.makeVhost()
            defer { TestEnvironment.deleteVhost(vhost) }
            let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("agentry-install-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: prefix) }
            let install = TestEnvironment.repositoryRoot.appendingPathComponent("Scripts/install").path
            let installed = try TestEnvironment.run("/bin/bash", [install, "--prefix", prefix.path, "--binary", TestEnvironment.agentryExecutable])
            #expect(installed.status == 0, "\(installed.output)")
            let agentry = prefix.appendingPathComponent("bin/agentry").path
            #expect(FileManager.default.isExecutableFile(atPath: agentry))

            let amqp = TestEnvironment.configuration.amqp
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AGENTRY_") }
            environment["AGENTRY_DATABASE_URL"] = url
            environment["AGENTRY_AMQP_URL"] = "amqp://\(amqp.user):\(amqp.password)@\(amqp.host):\(amqp.port)/\(vhost)"
            let tmp = URL(fileURLWithPath: "/tmp")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/Migrations") && !FileManager.default.fileExists(atPath: "/tmp/Topology"))
            let migrated = try TestEnvironment.run(agentry, ["migrate"], environment: environment, directory: tmp)
            #expect(migrated.status == 0, "\(migrated.output)")
            let expected = Migration.builtIn.count
            #expect(migrated.output.contains("\(expected) applied now"), "\(migrated.output)")
            let applied = try TestEnvironment.run(agentry, ["topology", "apply"], environment: environment, directory: tmp)
            #expect(applied.status == 0, "\(applied.output)")
            let connection = try await TestEnvironment.connect(vhost: vhost)
            defer { Task { await connection.close() } }
            #expect(try await connection.exchangeExists(Topology.routeExchange))

            let worker = try WorkerProcess(agents: ["none"], environment: environment, executable: agentry, directory: tmp)
            let ready = try await TestEnvironment.eventually(timeout: .seconds(30)) { worker.output.contains("worker ready") }
            #expect(ready, "\(worker.output)")
            worker.signal(SIGTERM)
            let status = await worker.wait(timeout: .seconds(30))
            #expect(status == 0, "\(worker.output)")
        }
    }

    @Test("`runs list` with no runs suggests a publish command that `agentry publish` accepts")
    func emptyRunsHint() async throws {
        try await TestEnvironment.withFreshDatabase("hint") { _, url in
            let listed = try TestEnvironment.run(TestEnvironment.agentryExecutable, ["runs", "list"], environment: ["AGENTRY_DATABASE_URL": url])
            let hint = try #require(listed.output.split(separator: "`").dropFirst().first.map(String.init), "\(listed.output)")
            #expect(hint.hasPrefix("agentry publish "), "\(listed.output)")
            // The suggested arguments, as a shell would split them, against a broker that is not there: only a
            // connection error may stop them, not their form.
            let arguments = ["alert.device_offline", "--payload", #"{"device_id": "stb-1"}"#]
            #expect(hint == "agentry publish " + arguments[0] + " " + arguments[1] + " '" + arguments[2] + "'", "\(hint)")
            let tried = try TestEnvironment.run(
                TestEnvironment.agentryExecutable, ["publish"] + arguments,
                environment: ["AGENTRY_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2f"])
            #expect(!tried.output.contains("Usage:"), "\(tried.output)")
            #expect(tried.output.contains("127.0.0.1:1"), "\(tried.output)")
        }
    }

    @Test("a password on the command line is warned about and never printed, even in a URL that does not parse")
    func passwordsStayHidden() throws {
        let secret = "pa55 w@rd-\(UUID().uuidString.prefix(6))"
        let result = try TestEnvironment.run(
            TestEnvironment.agentryExecutable,
            ["publish", "x.y", "--amqp-url", "amqp://guest:\(secret)@127.0.0.1:1/%2f"])
        #expect(result.status != 0)
        #expect(!result.output.contains(secret) && !result.output.contains("w@rd"), "\(result.output)")
        #expect(result.output.contains("--amqp-url carries a password") && result.output.contains("AGENTRY_AMQP_URL"), "\(result.output)")
        let database = try TestEnvironment.run(
            TestEnvironment.agentryExecutable,
            ["runs", "list", "--database-url", "postgres://agentry:\(secret)@127.0.0.1:1/agentry"])
        #expect(!database.output.contains(secret) && !database.output.contains("w@rd"), "\(database.output)")
        #expect(database.output.contains("--database-url carries a password"), "\(database.output)")
    }
}
