import Foundation
import Testing

@testable import AgentryCore

/// Three lines of a definition; its triggers start on line 4.
private let head = """
    metadata: {id: poller, name: Poller, version: 1.0.0, author: qa, description: Polls.}
    goal: {type: continuous, description: Poll.}
    triggers:

    """

private func problems(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ValidationProblem] {
    do {
        _ = try AgentDefinition.parse(yaml: yaml, file: "poller.yaml")
        Issue.record("expected validation problems, the definition parsed", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.problems
    }
}

@Suite("Schedule triggers")
struct TriggerScheduleTests {
    @Test("a schedule trigger reads with every setting, and with only schedule and type")
    func reads() throws {
        let d = try AgentDefinition.parse(
            yaml: head + """
                  - schedule: "*/5 * * * *"
                    type: device.poll
                    priority: high
                    payload: {pool: lab-1, count: 2}
                    time_zone: Europe/Berlin
                    missed: fire_once
                    jitter_seconds: 30
                    description: poll the lab
                  - schedule: '@every 1h30m'
                    type: device.sweep
                  - type: alert.*
                    priority: low
                """)
        #expect(
            d.triggers[0]
                == EventTrigger(
                    type: "device.poll", priority: .high,
                    schedule: TriggerSchedule(
                        cron: try CronExpression("*/5 * * * *"), timeZone: "Europe/Berlin", payload: ["pool": "lab-1", "count": 2],
                        missed: .fireOnce, jitterSeconds: 30, description: "poll the lab")))
        #expect(
            d.triggers[1]
                == EventTrigger(type: "device.sweep", priority: .normal, schedule: TriggerSchedule(cron: try CronExpression("@every 1h30m"))))
        #expect(d.triggers[1].schedule?.timeZone == "UTC")
        #expect(d.triggers[1].schedule?.cron.interval == .seconds(5400))
        #expect(d.triggers[2] == EventTrigger(type: "alert.*", priority: .low))
        let berlin = try #require(d.triggers[0].schedule)
        #expect(berlin.zone == TimeZone(identifier: "Europe/Berlin"))
        #expect(berlin.next(after: utcInstant("2026-03-29T00:57:00Z")) == utcInstant("2026-03-29T01:00:00Z"))
    }

    static let definitions: [AgentDefinition] = {
        let cron = { (text: String) in (try? CronExpression(text))! }
        let plain = AgentDefinition(
            metadata: AgentMetadata(id: "poller", name: "Poller", version: "1.0.0", author: "qa", description: "Polls."),
            goal: AgentGoal(type: .continuous, description: "Poll."),
            triggers: [EventTrigger(type: "device.poll", priority: .normal, schedule: TriggerSchedule(cron: cron("0 */2 * * *")))])
        var full = plain
        full.triggers = [
            EventTrigger(
                type: "device.poll", priority: .critical, filters: ["pool": "lab-1"],
                schedule: TriggerSchedule(
                    cron: cron("0 30 7 ? JAN-MAR MON#1"), timeZone: "America/New_York",
                    payload: ["pool": "lab-1", "n": 1.5, "list": [true, nil], "template": "{{not.one}}"], missed: .fireOnce,
                    jitterSeconds: 3600, description: "first Monday: the full check\nsecond line")),
            EventTrigger(type: "device.tick", priority: .low, schedule: TriggerSchedule(cron: cron("@every 30s"), timeZone: "UTC")),
            EventTrigger(type: "device.*", priority: .high),
        ]
        return [plain, full]
    }()

    @Test("yaml() and jsonValue() write the schedule; both read back equal", arguments: definitions)
    func roundTrip(_ d: AgentDefinition) throws {
        let yaml = d.yaml()
        let fromYAML = try AgentDefinition.parse(yaml: yaml)
        #expect(fromYAML == d, "exported:\n\(yaml)")
        #expect(fromYAML.yaml() == yaml)
        let json = JSON.serialize(d.jsonValue())
        #expect(try AgentDefinition.parse(yaml: json) == d, "JSON:\n\(json)")
        #expect(d.jsonValue() == (try JSON.parse(Array(json.utf8))))
    }

    @Test("the written form has the schedule's keys, defaults left out")
    func writtenForm() throws {
        let d = try AgentDefinition.parse(
            yaml: head + """
                  - {schedule: "*/5 * * * *", type: device.poll}
                  - {schedule: "@daily", type: device.report, time_zone: Europe/Berlin, missed: fire_once, jitter_seconds: 5, payload: {a: 1}, description: d}
                """)
        let json = d.jsonValue()
        #expect(
            json[path: "triggers"]?.arrayValue?.first
                == .object(["type": "device.poll", "priority": "normal", "schedule": "*/5 * * * *"]))
        #expect(
            json[path: "triggers"]?.arrayValue?.last
                == .object([
                    "type": "device.report", "priority": "normal", "schedule": "@daily", "time_zone": "Europe/Berlin",
                    "missed": "fire_once", "jitter_seconds": .int(5), "payload": .object(["a": .int(1)]), "description": "d",
                ]))
        #expect(d.yaml().contains("- type: device.poll\n  priority: normal\n  schedule: '*/5 * * * *'\n"))
    }

    @Test("a bad expression: path, line and column of the problem, and the cron message with its position")
    func badExpression() {
        let found = problems(head + "  - schedule: \"0 61 * * *\"\n    type: device.poll\n")
        #expect(found.count == 1)
        #expect(found.first?.path == "triggers[0].schedule")
        #expect(found.first?.line == 4)
        #expect(found.first?.column == 18, "the column of '61'")
        #expect(found.first?.message == "field hour at position 3: expected a number 0-23; found '61'")
        #expect(
            found.first?.description
                == "poller.yaml:4:18: triggers[0].schedule: field hour at position 3: expected a number 0-23; found '61'")

        let plain = problems(head + "  - schedule: 0 0 * * FRY\n    type: device.poll\n")
        #expect(plain.first?.column == 23)
        #expect(plain.first?.suggestion == "did you mean 'FRI'?")
        #expect(
            plain.first?.description
                == "poller.yaml:4:23: triggers[0].schedule: field day of week at position 9: expected a number 0-7 or a name SUN-SAT; found 'FRY'; did you mean 'FRI'?"
        )

        let count = problems(head + "  - schedule: '* * * *'\n    type: device.poll\n")
        #expect(
            count.map(\.description) == [
                "poller.yaml:4:23: triggers[0].schedule: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; found 4"
            ])
    }

    @Test("the settings of a schedule are checked, each problem with its place")
    func settings() {
        let found = problems(
            head + """
                  - schedule: "@hourly"
                    type: device.*
                    time_zone: Europe/Berln
                    missed: fire-once
                    jitter_seconds: 3601
                    payload: [1]
                  - type: alert.x
                    priority: high
                    payload: {a: 1}
                  - schedule: "@hourly"
                    type: device.poll
                    priority: urgent
                """)
        #expect(
            found.map(\.description) == [
                "poller.yaml:5:11: triggers[0].type: event type 'device.*' contains '*'; use letters, digits, '_', '-' and ':' between dots (a schedule trigger publishes events of its type: one event type, not a pattern)",
                "poller.yaml:6:16: triggers[0].time_zone: unknown time zone 'Europe/Berln'; expected an IANA time zone name such as UTC, Europe/Berlin or America/New_York; did you mean 'Europe/Berlin'?",
                "poller.yaml:7:13: triggers[0].missed: expected one of skip, fire_once; found 'fire-once'; did you mean 'fire_once'?",
                "poller.yaml:8:21: triggers[0].jitter_seconds: expected a whole number of seconds 0-3600, found 3601",
                "poller.yaml:9:14: triggers[0].payload: expected a mapping, found a list",
                "poller.yaml:12:14: triggers[1].payload: 'payload' is a setting of a schedule trigger, and this trigger has no schedule; add schedule: \"<cron expression>\" to the trigger, or remove 'payload'",
                "poller.yaml:15:15: triggers[2].priority: expected one of critical, high, normal, low; found 'urgent'",
            ])
    }

    @Test("the example poll-schedule.yaml reads with its two schedules")
    func example() throws {
        let d = try parseAgentExample("bundles/poll-schedule/agents/poll-schedule.yaml")
        #expect(d.handler == .log)
        #expect(d.triggers.map(\.type) == ["device.poll", "device.poll.morning"])
        #expect(
            d.triggers[0].schedule
                == TriggerSchedule(cron: try CronExpression("*/5 * * * *"), payload: ["pool": "lab-1"], description: "poll the lab"))
        #expect(d.triggers[0].priority == .normal)
        let morning = try #require(d.triggers[1].schedule)
        #expect(morning.timeZone == "Europe/Berlin" && morning.missed == .fireOnce && morning.jitterSeconds == 30)
        // Friday 2026-03-27 07:30 CET, then Monday 2026-03-30 07:30 CEST.
        #expect(
            morning.cron.ticks(after: utcInstant("2026-03-27T00:00:00Z"), in: try #require(morning.zone), count: 2).map(utcText) == [
                "2026-03-27T06:30:00Z", "2026-03-30T05:30:00Z",
            ])
    }
}
