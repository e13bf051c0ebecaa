import Foundation
import Testing

@testable import AgentryCore

@Suite("cancel_on")
struct CancelOnTests {
    /// `base` (12 lines) with `cancel_on` from line 13.
    func definition(_ cancelOn: String) -> String { base + cancelOn }

    func problems(_ yaml: String) -> [ValidationProblem] {
        do {
            _ = try AgentDefinition.parse(yaml: yaml)
            return []
        } catch {
            return error.problems
        }
    }

    @Test("one path or a list of paths; written back as read")
    func parsesAndWrites() throws {
        let parsed = try AgentDefinition.parse(
            yaml: definition(
                """
                cancel_on:
                  - type: alert.resolved
                    match: payload.device_id
                  - type: device.*
                    match: [payload.device_id, source]

                """))
        #expect(
            parsed.cancelOn == [
                CancelOn(type: "alert.resolved", match: ["payload.device_id"]),
                CancelOn(type: "device.*", match: ["payload.device_id", "source"]),
            ])
        #expect(parsed.cancelOnPatterns == ["alert.resolved", "device.*"])
        #expect(parsed.cancelOnPaths == ["payload.device_id", "source"])
        let yaml = parsed.yaml()
        #expect(
            yaml.contains(
                "cancel_on:\n- type: alert.resolved\n  match: payload.device_id\n- type: device.*\n  match:\n  - payload.device_id\n  - source\n"))
        #expect(try AgentDefinition.parse(yaml: yaml) == parsed)
        // JSON, as the registry stores it, reads back the same.
        #expect(try AgentDefinition.parse(yaml: JSON.serialize(parsed.jsonValue())) == parsed)
        // Absent: none, and none written.
        let plain = try AgentDefinition.parse(yaml: base)
        #expect(plain.cancelOn.isEmpty)
        #expect(!plain.yaml().contains("cancel_on"))
    }

    @Test("values compared: a cancelling event lacking one cancels nothing; a run keeps the values it has")
    func values() {
        let entry = CancelOn(type: "alert.resolved", match: ["payload.device.id", "source"])
        let event = Event(type: "alert.resolved", payload: ["device": ["id": "tv-1"]], source: "lab")
        #expect(entry.values(in: event) == ["payload.device.id": "tv-1", "source": "lab"])
        #expect(CancelOn.describe(entry.values(in: event) ?? [:]) == "payload.device.id = tv-1, source = lab")
        #expect(entry.values(in: Event(type: "alert.resolved", payload: ["device": ["id": .null]], source: "lab")) == nil)
        #expect(entry.values(in: Event(type: "alert.resolved", payload: [:], source: "lab")) == nil)
        #expect(entry.cancels(eventType: "alert.resolved"))
        #expect(!entry.cancels(eventType: "alert.blackscreen"))
        #expect(CancelOn.describe(["payload.n": 3]) == "payload.n = 3")

        var definition = AgentDefinition(
            metadata: AgentMetadata(id: "a", name: "A", version: "1.0.0", author: "t", description: "d"),
            goal: AgentGoal(type: .continuous, description: "d"), triggers: [])
        #expect(definition.cancelValues(of: event) == nil, "no cancel_on: nothing kept")
        definition.cancelOn = [entry, CancelOn(type: "x.y", match: ["payload.lab"])]
        #expect(definition.cancelValues(of: event) == ["payload.device.id": "tv-1", "source": "lab"], "payload.lab is absent: left out")
        #expect(definition.cancelOnEntries(for: "alert.resolved") == [entry])
    }

    @Test("problems are reported with line, column and a way out")
    func problems() {
        var found = problems(definition("cancel_on: alert.resolved\n"))
        #expect(found.count == 1)
        #expect(found.first?.path == "cancel_on")
        #expect(found.first?.line == 13)
        #expect(found.first?.message == "expected a list of cancelling events (each with type and match), found a string ('alert.resolved')")

        found = problems(definition("cancel_on:\n  - type: alert.resolved\n"))
        #expect(found.map(\.message) == ["missing required field 'match'"])
        #expect(found.first?.path == "cancel_on[0].match")

        found = problems(definition("cancel_on:\n  - type: alert.resolved\n    match: device_id\n"))
        #expect(found.count == 1)
        #expect(found.first?.path == "cancel_on[0].match")
        #expect(found.first?.line == 15)
        #expect(found.first?.column == 12)
        #expect(found.first?.message.contains("match path 'device_id' does not name a part of an event") == true)
        #expect(found.first?.suggestion == "did you mean 'payload.device_id'?")

        found = problems(definition("cancel_on:\n  - type: alert.resolved\n    match: \"{{payload.device_id}}\"\n"))
        #expect(found.first?.message == "match path '{{payload.device_id}}' is written with braces; write the path alone, e.g. payload.device_id")
        #expect(found.first?.suggestion == "did you mean 'payload.device_id'?")

        found = problems(definition("cancel_on:\n  - type: alert.resolved\n    match: [payload.device_id, id]\n"))
        #expect(found.map(\.path) == ["cancel_on[0].match[1]"])
        #expect(found.first?.message.contains("differs for every event") == true)

        found = problems(definition("cancel_on:\n  - type: alert.resolved\n    match: []\n"))
        #expect(found.first?.message == "expected at least one path to compare, found an empty list")

        found = problems(definition("cancel_on:\n  - type: alert..resolved\n    match: payload.x\n    matches: y\n"))
        #expect(found.map(\.path) == ["cancel_on[0].type", "cancel_on[0].matches"])
        #expect(found.last?.suggestion == "did you mean 'match'?")

        found = problems(definition("cancel_on:\n  - type: alert.resolved\n    match: [payload.x, payload.x]\n"))
        #expect(found.first?.message == "match path 'payload.x' appears twice; each path may appear once")

        found = problems(definition("cancel_ob:\n  - type: alert.resolved\n    match: payload.x\n"))
        #expect(found.first?.suggestion == "did you mean 'cancel_on'?")
    }
}
