import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

@Suite("agentry publish: bad input")
struct PublishCLITests {
    /// Runs `agentry publish` against a broker address where nothing listens, so that a check that happened only after
    /// connecting would show up as a connection error instead of the expected message.
    func publish(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, ["publish"] + arguments,
                                environment: ["AGENTRY_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2f"])
    }

    @Test("each bad argument is named, with where a payload's JSON breaks, before anything connects",
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

    @Test("a command fails at once, naming the server and the reason (postgres-nio's pool alone would wait for ever)",
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
