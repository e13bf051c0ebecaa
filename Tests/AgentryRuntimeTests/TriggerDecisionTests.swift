import AgentryCore
import Foundation
import Testing

@testable import AgentryRuntime

/// Whether an event starts a task, and why not: `AgentRunner.skipReason`.
@Suite("Trigger decisions")
struct TriggerDecisionTests {
    static func definition(_ body: String) throws -> AgentDefinition {
        try AgentDefinition.parse(
            yaml: """
                metadata: {id: screens, name: Screens, version: 1.2.0, author: me, description: d}
                goal: {type: continuous, description: g}
                \(body)
                """)
    }

    @Test("a trigger whose pattern matches and whose filters hold starts a task")
    func matchingTrigger() throws {
        let d = try Self.definition("triggers: [{type: 'alert.*', priority: HIGH, filters: {device_id: tv-1}}]")
        let event = Event(type: "alert.blackscreen", payload: ["device_id": "tv-1"])
        #expect(AgentRunner.skipReason(d, event: event, pools: [:]) == nil)
    }

    @Test("a filter that does not hold is the reason, naming the trigger")
    func failingFilter() throws {
        let d = try Self.definition("triggers: [{type: 'alert.*', priority: HIGH, filters: {device_id: tv-1}}]")
        let reason = try #require(AgentRunner.skipReason(d, event: Event(type: "alert.blackscreen", payload: ["device_id": "tv-2"]), pools: [:]))
        #expect(reason.hasPrefix("trigger 'alert.*': "), "\(reason)")
        #expect(reason.contains("device_id"), "\(reason)")
    }

    @Test("one of several matching triggers is enough; when none holds, every reason is given")
    func severalTriggers() throws {
        let d = try Self.definition(
            """
            triggers:
              - {type: 'alert.#', priority: HIGH, filters: {severity: high}}
              - {type: alert.blackscreen, priority: HIGH, filters: {device_id: tv-1}}
            """)
        #expect(AgentRunner.skipReason(d, event: Event(type: "alert.blackscreen", payload: ["device_id": "tv-1"]), pools: [:]) == nil)
        let reason = try #require(AgentRunner.skipReason(d, event: Event(type: "alert.blackscreen", payload: ["device_id": "tv-9"]), pools: [:]))
        #expect(reason.contains("trigger 'alert.#'") && reason.contains("trigger 'alert.blackscreen'") && reason.contains("; "), "\(reason)")
    }

    @Test("no trigger matching the type names the agent, its version and the type")
    func noTrigger() throws {
        let d = try Self.definition("triggers: [{type: deploy.done, priority: LOW}]")
        let reason = AgentRunner.skipReason(d, event: Event(type: "alert.blackscreen"), pools: [:])
        #expect(reason == "no trigger of screens 1.2.0 matches event type 'alert.blackscreen'")
    }

    @Test("an event pool the agent lists starts a task for any type its patterns match")
    func eventPool() throws {
        let d = try Self.definition("triggers: []\nevent_pools: [alerts]")
        let pools = ["alerts": ["alert.#"], "devices": ["device.#"]]
        #expect(AgentRunner.skipReason(d, event: Event(type: "alert.blackscreen"), pools: pools) == nil)
        #expect(AgentRunner.skipReason(d, event: Event(type: "device.offline"), pools: pools) != nil, "a pool the agent does not list")
        #expect(AgentRunner.skipReason(d, event: Event(type: "alert.x"), pools: [:]) != nil, "a pool the topology does not declare")
    }
}
