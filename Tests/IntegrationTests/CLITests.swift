import Foundation
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
