import Foundation
import Testing

@testable import AgentryCore

@Suite("ResourceKey")
struct ResourceKeyTests {
    @Test("parses <type>:<id>, the id may hold colons; refuses what has no type or id")
    func parsing() {
        #expect(ResourceKey("device:tv-1") == ResourceKey(type: "device", id: "tv-1"))
        #expect(ResourceKey("tree:main:feature/x") == ResourceKey(type: "tree", id: "main:feature/x"))
        #expect(ResourceKey("device") == nil)
        #expect(ResourceKey(":tv-1") == nil)
        #expect(ResourceKey("device:") == nil)
    }

    @Test("advisory keys are FNV-1a of type, a zero byte and id: fixed across hosts and releases")
    func stableKeys() {
        // Reference values computed independently (Python, FNV-1a 64 over b"device\x00tv-1", …, as a signed bigint).
        #expect(ResourceKey(type: "device", id: "tv-1").advisoryKey == -2127047538747339743)
        #expect(ResourceKey(type: "tree", id: "main").advisoryKey == 6639580585386562366)
        #expect(ResourceKey(type: "userinterface", id: "ui-é").advisoryKey == 5749750998016070108)
        #expect(ResourceKey(type: "device", id: "tv-1").advisoryKey != ResourceKey(type: "device", id: "tv-2").advisoryKey)
        // The separator keeps "dev"+"ice:x" apart from "device"+"x".
        #expect(ResourceKey(type: "dev", id: "icex").advisoryKey != ResourceKey(type: "device", id: "x").advisoryKey)
    }

    @Test("several resources are taken in one global order, each once, filled from the event")
    func orderAndTemplates() throws {
        var definition = try AgentDefinition.parse(
            yaml: """
                metadata: {id: two-devices, name: Two, version: 1.0.0, author: t, description: d}
                goal: {type: continuous, description: d}
                triggers: [{type: pair.check, priority: high}]
                permissions: {devices: [read, take_control]}
                resources: ["device:{{payload.b}}", "tree:{{payload.branch}}", "device:{{payload.a}}", "device:{{payload.b}}"]
                """)
        let event = Event(type: "pair.check", payload: ["a": "tv-2", "b": "tv-1", "branch": "main"])
        let keys = try ResourceKey.resources(of: definition, for: event).get()
        #expect(keys.map(\.description) == ["device:tv-1", "device:tv-2", "tree:main"])
        // {A, B} and {B, A} come out in the same order.
        let swapped = Event(type: "pair.check", payload: ["a": "tv-1", "b": "tv-2", "branch": "main"])
        #expect(try ResourceKey.resources(of: definition, for: swapped).get() == keys)
        // A template that fills to nothing is an error naming the resource, not an empty lock.
        let missing = Event(type: "pair.check", payload: ["a": "tv-1"])
        guard case .failure(let error) = ResourceKey.resources(of: definition, for: missing) else {
            Issue.record("expected a failure for a missing payload field")
            return
        }
        #expect(error.description.contains("device:{{payload.b}}"))
        // Devices need take_control.
        #expect(keys[0].permissionProblem(for: definition) == nil)
        definition.permissions.devices = ["read"]
        #expect(keys[0].permissionProblem(for: definition)?.contains("add take_control to permissions.devices") == true)
        #expect(keys[2].permissionProblem(for: definition) == nil, "trees need no device permission")
    }
}
