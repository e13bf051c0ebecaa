import AgentryCore
import AgentryStore
import Foundation
import Testing

/// `agentry schedules …`, `agentry events …` and `agentry publish --id/--delay/--at`, as a user types them.
@Suite("agentry schedules and delayed events", .serialized)
struct ScheduleCLITests {
    func agentry(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try TestEnvironment.run(TestEnvironment.agentryExecutable, arguments)
    }

    @Test("a schedule is added, listed, shown with its next ticks, disabled, enabled and removed")
    func lifecycle() async throws {
        try await TestEnvironment.migrate()
        let name = TestEnvironment.uniqueName("cli-")
        let add = try agentry([
            "schedules", "add", name, "--cron", "@every 30s", "--type", "test.cli.\(name)", "--payload", "{\"pool\": \"lab-1\"}",
            "--description", "from the CLI test",
        ])
        #expect(add.status == 0, "\(add.output)")
        #expect(add.output.contains("schedule \(name) saved") && add.output.contains("next tick 20"), "\(add.output)")
        let again = try agentry(["schedules", "add", name, "--cron", "@every 30s", "--type", "test.cli.\(name)"])
        #expect(again.status != 0 && again.output.contains("exists"), "a second add of the name is refused: \(again.output)")
        let list = try agentry(["schedules", "list"])
        #expect(list.output.contains(name) && list.output.contains("@every 30s"), "\(list.output)")
        let show = try agentry(["schedules", "show", name, "-n", "3"])
        let shown = try JSON.parse(show.output)
        #expect(shown[path: "upcoming"]?.arrayValue?.count == 3, "\(show.output)")
        #expect(shown[path: "payload.pool"]?.stringValue == "lab-1")
        #expect(shown[path: "description"]?.stringValue == "from the CLI test")
        #expect(try agentry(["schedules", "disable", name]).status == 0)
        let disabled = try JSON.parse(try agentry(["schedules", "show", name]).output)
        #expect(disabled[path: "enabled"] == .bool(false) && disabled[path: "next_run"] == .null)
        #expect(try agentry(["schedules", "enable", name]).status == 0)
        let enabled = try JSON.parse(try agentry(["schedules", "show", name]).output)
        #expect(enabled[path: "enabled"] == .bool(true) && enabled[path: "next_run"] != .null)
        #expect(try agentry(["schedules", "remove", name]).status == 0)
        let gone = try agentry(["schedules", "show", name])
        #expect(gone.status != 0 && gone.output.contains("no schedule named '\(name)'"), "\(gone.output)")
    }

    @Test(
        "bad schedule input is refused before anything is kept, saying what is wrong",
        arguments: [
            (["--cron", "@every 0s", "--type", "test.bad"], "--cron"),
            (["--cron", "@every 30s", "--type", "test.*"], "pattern"),
            (["--cron", "@every 30s", "--type", "test.bad", "--time-zone", "Europe/Berlinn"], "IANA"),
            (["--cron", "@every 30s", "--type", "test.bad", "--missed", "sometimes"], "skip or fire_once"),
            (["--cron", "@every 30s", "--type", "test.bad", "--payload", "[1]"], "JSON object"),
        ])
    func badInput(arguments: [String], expected: String) throws {
        let result = try agentry(["schedules", "add", "bad-input"] + arguments)
        #expect(result.status != 0)
        #expect(result.output.contains(expected), "\(result.output)")
    }

    @Test("`next --cron` lists the ticks of an expression in its time zone, without saving anything")
    func nextOfExpression() throws {
        let result = try agentry(["schedules", "next", "--cron", "@every 1h", "--time-zone", "Europe/Berlin", "-n", "3"])
        #expect(result.status == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(
            lines.allSatisfy { $0.contains(":00:00.000Z") && ($0.contains("CET") || $0.contains("CEST") || $0.contains("GMT+")) }, "\(result.output)")
    }

    @Test("publish --delay keeps the event; events scheduled lists it; cancel removes it; --id makes a retried publish one event")
    func delayedFromTheCLI() async throws {
        try await TestEnvironment.migrate()
        let id = TestEnvironment.uniqueName("cli-delayed-")
        let kept = try agentry(["publish", "test.cli.delayed", "--delay", "1h", "--id", id, "--payload", "{\"n\": 1}"])
        #expect(kept.status == 0 && kept.output.contains("kept test.cli.delayed \(id)"), "\(kept.output)")
        let twice = try agentry(["publish", "test.cli.delayed", "--delay", "1h", "--id", id])
        #expect(twice.status == 0 && twice.output.contains("was kept before; nothing changed"), "\(twice.output)")
        let scheduled = try agentry(["events", "scheduled", "--json"])
        let listed = try JSON.parse(scheduled.output)[path: "events"]?.arrayValue ?? []
        let mine = listed.filter { $0[path: "event_id"]?.stringValue == id }
        #expect(mine.count == 1, "\(scheduled.output)")
        if let deliverAt = mine.first?[path: "deliver_at"]?.stringValue.flatMap(Timestamp.parse) {
            #expect(abs(deliverAt.timeIntervalSinceNow - 3600) < 60)
        }
        #expect(try agentry(["events", "cancel", id]).output.contains("cancelled"))
        let listedAfter = try JSON.parse(try agentry(["events", "scheduled", "--json"]).output)[path: "events"]?.arrayValue ?? []
        #expect(!listedAfter.contains { $0[path: "event_id"]?.stringValue == id })
        let unknown = try agentry(["events", "cancel", "no-such-\(id)"])
        #expect(unknown.status != 0 && unknown.output.contains("no delayed event"), "\(unknown.output)")
        let bad = try agentry(["publish", "test.cli.delayed", "--delay", "soon"])
        #expect(bad.status != 0 && bad.output.contains("--delay 'soon' is not a duration"), "\(bad.output)")
        let both = try agentry(["publish", "test.cli.delayed", "--delay", "1m", "--at", "2030-01-01T00:00:00Z"])
        #expect(both.status != 0 && both.output.contains("not both"), "\(both.output)")
    }

    @Test("publishing twice with the same --id logs one event")
    func idempotentPublish() async throws {
        try await withEventLog { _, log, _ in
            let id = TestEnvironment.uniqueName("cli-id-")
            for _ in 0..<2 {
                let result = try agentry(["publish", "test.cli.id", "--id", id, "--payload", "{\"n\": 1}"])
                #expect(result.status == 0 && result.output.contains("published test.cli.id \(id)"), "\(result.output)")
            }
            #expect(try await TestEnvironment.eventually { try await log.count(eventID: EventID(id)!) == 1 })
            // Both publishes reached the log's queue; the second was taken as the same event.
            #expect(try await TestEnvironment.waitUntilSettled("agentry.event-log"))
            #expect(try await log.count(eventID: EventID(id)!) == 1)
        }
    }
}
